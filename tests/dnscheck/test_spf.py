"""SPF (RFC 7208): the parser, macro expansion, check_host() and the whole-tree walk.

These test the algorithm against an in-memory DNS (a dict of answers); the
same code against a real authoritative server is proven in
tests/integration/test_dnscheck_zones.py.
"""

from __future__ import annotations

import ipaddress

import pytest

from core.resolver import Answer
from dnscheck import spf
from dnscheck.spf import SpfSyntaxError

IP4 = "192.0.2.3"
IP6 = "2001:db8::cb01"
SENDER = "strong-bad@email.example.com"


# ---------------------------------------------------------------- an in-memory DNS


def ok(name: str, rdtype: str, *records: str) -> tuple[tuple[str, str], Answer]:
    return (name, rdtype), Answer(name, rdtype, "ok", records)


def status(name: str, rdtype: str, what: str) -> tuple[tuple[str, str], Answer]:
    return (name, rdtype), Answer(name, rdtype, what)


class FakeDns:
    """Answers from a dict of (name, rdtype) -> Answer; anything else does not exist.

    Remembers every question, so a test can see what was (not) asked.
    """

    def __init__(self, *entries: tuple[tuple[str, str], Answer]) -> None:
        self.answers: dict[tuple[str, str], Answer] = dict(entries)
        self.asked: list[tuple[str, str]] = []

    def __call__(self, name: str, rdtype: str) -> Answer:
        key = (name.lower().rstrip("."), rdtype)
        self.asked.append(key)
        if key in self.answers:
            return self.answers[key]
        exists = any(known == key[0] for known, _ in self.answers)
        return Answer(key[0], rdtype, "nodata" if exists else "nxdomain")


def spf_of(name: str, text: str) -> tuple[tuple[str, str], Answer]:
    return ok(name, "TXT", text)


def host(dns: FakeDns, domain: str = "a.test", ip: str = IP4,
         sender: str = "someone@a.test") -> str:
    return spf.check_host(dns, ip, domain, sender)[0]


# ---------------------------------------------------------------- parse


@pytest.mark.parametrize("text", [
    "v=spf1 -all",
    "v=spf1",
    "V=SPF1 +mx ?all",
    "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.7 ip6:2001:db8::/32 ip6:2001:db8::1 -all",
    "v=spf1 a a/24 a:x.test a:x.test/24//64 a//64 mx mx:x.test/28 mx//96 ~all",
    "v=spf1 include:_spf.example.net ?include:other.test -all",
    "v=spf1 exists:%{ir}.%{l1r-}.%{d}.ex.test exists:%{i}._spf.%{d2} -all",
    "v=spf1 mx redirect=_spf.example.net",
    "v=spf1 -all exp=explain.%{d}",
    "v=spf1 foo=bar x-custom=%{d} mx -all",
    "v=spf1 ptr ptr:example.test -all",
    "v=spf1   mx    -all  ",
])
def test_it_parses_valid_records(text):
    record = spf.parse(text)
    assert record.text == text


def test_it_reads_what_a_record_says():
    record = spf.parse("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a:x.test/24//64 mx//64 "
                       "-include:i.test exists:%{i}.x.test foo=bar redirect=r.test "
                       "exp=e.%{d}")

    ip4, ip6, a, mx, include, exists = record.terms
    assert ip4.network == ipaddress.ip_network("192.0.2.0/24")
    assert ip6.network == ipaddress.ip_network("2001:db8::/32")
    assert (a.mechanism, a.domain_spec, a.cidr4, a.cidr6) == ("a", "x.test", 24, 64)
    assert (mx.mechanism, mx.domain_spec, mx.cidr4, mx.cidr6) == ("mx", "", 32, 64)
    assert (include.qualifier, include.domain_spec) == ("-", "i.test")
    assert str(include) == "-include:i.test"
    assert exists.domain_spec == "%{i}.x.test"
    assert record.redirect == "r.test"
    assert record.explanation == "e.%{d}"
    assert record.all_term is None


def test_a_plain_a_with_a_prefix_keeps_the_default_for_ipv6():
    [term] = spf.parse("v=spf1 a/24").terms
    assert (term.cidr4, term.cidr6) == (24, 128)


@pytest.mark.parametrize(("text", "says"), [
    ("v=spf1 foo:bar.test -all", "unknown mechanism"),
    ("v=spf1 foo -all", "unknown mechanism"),
    ("v=spf1 ip4:300.1.2.3 -all", "not a network"),
    ("v=spf1 ip4:192.0.2.1/33", "not a network"),
    ("v=spf1 ip4", "ip4"),
    ("v=spf1 ip4:2001:db8::1 -all", "not an IPv4 address"),
    ("v=spf1 ip6:192.0.2.1 -all", "not an IPv6 address"),
    ("v=spf1 redirect=a.test redirect=b.test", "appears twice"),
    ("v=spf1 -all exp=a.test exp=b.test", "appears twice"),
    ("v=spf1 redirect=", "needs a domain"),
    ("v=spf1 include:%{z}.test -all", "include"),
    ("v=spf1 exists:%{d -all", "exists"),
    ("v=spf1 foo=%{z}", "bad macro"),
    ("v=spf1 all:x.test", "all takes no argument"),
    ("v=spf1 -all/24", "all takes no argument"),
    ("v=spf1 include", "needs a domain"),
    ("v=spf1 include: -all", "needs a domain"),
    ("v=spf1 a:nodot -all", "not a valid domain"),
    ("v=spf1 a/33", "bad prefix length"),
    ("v=spf1 mx//129", "bad prefix length"),
    ("v=spf1 include:x.test/24", "takes no prefix length"),
    ("v=spf1 a:x.test/", "cannot read"),
    ("spf1 -all", "v=spf1"),
    ("v=spf10 -all", "v=spf1"),
])
def test_it_refuses_bad_records(text, says):
    with pytest.raises(SpfSyntaxError) as refused:
        spf.parse(text)
    assert says in str(refused.value)
    assert "\n" not in str(refused.value)


def test_is_spf_needs_the_exact_version_word():
    assert spf.is_spf("v=spf1")
    assert spf.is_spf("v=spf1 -all")
    assert spf.is_spf("V=SPF1 -all")
    assert not spf.is_spf("v=spf10 -all")
    assert not spf.is_spf("v=DMARC1; p=none")
    assert not spf.is_spf("google-site-verification=x")


def test_a_zero_digit_transformer_is_a_syntax_error():
    with pytest.raises(SpfSyntaxError):
        spf.parse("v=spf1 exists:%{d0}.x.test -all")


def test_a_bare_ip4_term_is_explained_without_none():
    with pytest.raises(SpfSyntaxError) as refused:
        spf.parse("v=spf1 ip4 -all")
    assert "None" not in str(refused.value)


def test_a_slash_is_a_macro_delimiter():
    [term, _] = spf.parse("v=spf1 exists:%{l/}.x.test -all").terms
    assert term.domain_spec == "%{l/}.x.test"


@pytest.mark.parametrize("letter", ["c", "r", "t"])
def test_exp_only_macros_are_refused_in_a_domain_spec(letter):
    with pytest.raises(SpfSyntaxError):
        spf.parse(f"v=spf1 exists:%{{{letter}}}.x.test -all")


@pytest.mark.parametrize("letter", ["c", "r", "t"])
def test_an_exp_only_macro_in_a_domain_spec_is_a_permerror(letter):
    dns = FakeDns(spf_of("a.test", f"v=spf1 exists:%{{{letter}}}.x.test -all"))
    assert host(dns) == "permerror"


# ---------------------------------------------------------------- expand (RFC 7208 7.4)


RFC_EXAMPLES = {
    "%{s}": "strong-bad@email.example.com",
    "%{o}": "email.example.com",
    "%{d}": "email.example.com",
    "%{d4}": "email.example.com",
    "%{d3}": "email.example.com",
    "%{d2}": "example.com",
    "%{d1}": "com",
    "%{dr}": "com.example.email",
    "%{d2r}": "example.email",
    "%{l}": "strong-bad",
    "%{l-}": "strong.bad",
    "%{lr}": "strong-bad",
    "%{lr-}": "bad.strong",
    "%{l1r-}": "strong",
    "%{ir}.%{v}._spf.%{d2}": "3.2.0.192.in-addr._spf.example.com",
    "%{lr-}.lp._spf.%{d2}": "bad.strong.lp._spf.example.com",
    "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}": "bad.strong.lp.3.2.0.192.in-addr._spf.example.com",
    "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}": "3.2.0.192.in-addr.strong.lp._spf.example.com",
    "%{d2}.trusted-domains.example.net": "example.com.trusted-domains.example.net",
}


@pytest.mark.parametrize(("macro", "expansion"), RFC_EXAMPLES.items(), ids=RFC_EXAMPLES.keys())
def test_it_expands_the_rfc_examples(macro, expansion):
    assert spf.expand(macro, ip=IP4, domain="email.example.com", sender=SENDER) == expansion


def test_it_expands_the_rfc_ipv6_example():
    expanded = spf.expand("%{ir}.%{v}._spf.%{d2}", ip=IP6, domain="email.example.com",
                          sender=SENDER)
    assert expanded == ("1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
                        ".ip6._spf.example.com")


def test_a_sender_without_a_local_part_is_postmaster():
    # RFC 7208 4.3: with no local-part, "postmaster" is substituted.
    assert spf.expand("%{l}.%{o}", ip=IP4, domain="a.test", sender="a.test") == \
        "postmaster.a.test"


def test_it_expands_the_escapes():
    assert spf.expand("a%%b", ip=IP4, domain="a.test", sender=SENDER) == "a%b"
    assert spf.expand("a%_b%-c", ip=IP4, domain="a.test", sender=SENDER) == "a b%20c"


def test_a_literal_percent_before_an_underscore_stays():
    assert spf.expand("x%%_y", ip=IP4, domain="a.test", sender=SENDER) == "x%_y"


def test_a_long_expansion_loses_labels_on_the_left():
    sender = ("a" * 60 + ".") * 4 + "b@a.test"
    expanded = spf.expand("%{l}.%{l}.x.test", ip=IP4, domain="a.test", sender=sender)
    assert len(expanded) <= 253
    assert expanded.endswith(".x.test")


# ---------------------------------------------------------------- check_host


def test_an_address_in_ip4_passes_and_others_fail():
    dns = FakeDns(spf_of("a.test", "v=spf1 ip4:192.0.2.0/24 -all"))

    assert host(dns) == "pass"
    assert host(dns, ip="198.51.100.1") == "fail"
    assert host(dns, ip=IP6) == "fail"


def test_the_reason_names_the_matching_term():
    dns = FakeDns(spf_of("a.test", "v=spf1 ip4:192.0.2.0/24 ~ip6:2001:db8::/32 -all"))
    assert spf.check_host(dns, IP4, "a.test", "x@a.test") == (
        "pass", "matched ip4:192.0.2.0/24 in a.test")
    assert spf.check_host(dns, IP6, "a.test", "x@a.test") == (
        "softfail", "matched ~ip6:2001:db8::/32 in a.test")


@pytest.mark.parametrize("term", ["a", "-a:x.test/24//64", "mx//64", "?mx:x.test/28",
                                  "ip4:192.0.2.0/24", "-ip6:2001:db8::/32", "~all",
                                  "include:_spf.x.test", "exists:%{i}.x.test", "ptr"])
def test_a_term_reads_back_as_written(term):
    [parsed] = spf.parse(f"v=spf1 {term}").terms
    assert str(parsed) == term


@pytest.mark.parametrize(("all_term", "result"), [
    ("-all", "fail"), ("~all", "softfail"), ("?all", "neutral"), ("all", "pass"),
    ("+all", "pass"), ("", "neutral")])
def test_the_all_qualifier_decides_what_nothing_else_matched(all_term, result):
    dns = FakeDns(spf_of("a.test", f"v=spf1 ip4:198.51.100.0/24 {all_term}".strip()))
    assert host(dns) == result


def test_no_record_is_none():
    assert host(FakeDns()) == "none"
    assert host(FakeDns(ok("a.test", "TXT", "google-site-verification=x"))) == "none"


def test_two_records_are_a_permerror():
    dns = FakeDns(ok("a.test", "TXT", "v=spf1 -all", "v=spf1 mx -all"))
    assert host(dns) == "permerror"


def test_a_syntax_error_is_a_permerror():
    result, reason = spf.check_host(FakeDns(spf_of("a.test", "v=spf1 frob -all")), IP4,
                                    "a.test", "x@a.test")
    assert result == "permerror"
    assert "frob" in reason


def test_an_ipv6_address_matches_ip6():
    dns = FakeDns(spf_of("a.test", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"))
    assert host(dns, ip=IP6) == "pass"
    assert host(dns, ip="2001:db9::1") == "fail"


def test_an_include_that_passes_matches():
    dns = FakeDns(spf_of("a.test", "v=spf1 include:_spf.provider.test -all"),
                  spf_of("_spf.provider.test", "v=spf1 ip4:192.0.2.3 -all"))
    assert spf.check_host(dns, IP4, "a.test", "x@a.test") == (
        "pass", "matched include:_spf.provider.test in a.test")


def test_an_include_that_fails_does_not_match_and_evaluation_goes_on():
    dns = FakeDns(spf_of("a.test", "v=spf1 include:_spf.provider.test ~all"),
                  spf_of("_spf.provider.test", "v=spf1 ip4:198.51.100.0/24 -all"))
    assert spf.check_host(dns, IP4, "a.test", "x@a.test") == ("softfail", "matched ~all in a.test")


def test_an_include_without_a_record_is_a_permerror():
    dns = FakeDns(spf_of("a.test", "v=spf1 include:gone.test -all"))
    assert host(dns) == "permerror"


def test_redirect_hands_over_when_nothing_matched():
    dns = FakeDns(spf_of("a.test", "v=spf1 ip4:198.51.100.1 redirect=_spf.b.test"),
                  spf_of("_spf.b.test", "v=spf1 ip4:192.0.2.0/24 ~all"))
    assert host(dns) == "pass"
    assert host(dns, ip="198.51.100.1") == "pass"
    assert host(dns, ip="203.0.113.1") == "softfail"


def test_redirect_is_ignored_when_there_is_an_all():
    dns = FakeDns(spf_of("a.test", "v=spf1 -all redirect=_spf.b.test"),
                  spf_of("_spf.b.test", "v=spf1 +all"))
    assert host(dns) == "fail"
    assert ("_spf.b.test", "TXT") not in dns.asked


def test_redirect_to_nothing_is_a_permerror():
    assert host(FakeDns(spf_of("a.test", "v=spf1 redirect=gone.test"))) == "permerror"


def test_an_include_loop_is_a_permerror():
    dns = FakeDns(spf_of("a.test", "v=spf1 include:b.test -all"),
                  spf_of("b.test", "v=spf1 include:a.test -all"))
    result, reason = spf.check_host(dns, IP4, "a.test", "x@a.test")
    assert result == "permerror"
    assert "loop" in reason


def test_a_redirect_loop_is_a_permerror():
    dns = FakeDns(spf_of("a.test", "v=spf1 redirect=b.test"),
                  spf_of("b.test", "v=spf1 redirect=a.test"))
    result, reason = spf.check_host(dns, IP4, "a.test", "x@a.test")
    assert result == "permerror"
    assert "loop" in reason


def test_including_the_same_domain_twice_is_not_a_loop():
    dns = FakeDns(spf_of("a.test", "v=spf1 include:b.test include:c.test -all"),
                  spf_of("b.test", "v=spf1 include:shared.test -all"),
                  spf_of("c.test", "v=spf1 include:shared.test -all"),
                  spf_of("shared.test", "v=spf1 ip4:198.51.100.1 -all"))
    assert host(dns) == "fail"


def hosts_with_addresses(count: int) -> list[tuple[tuple[str, str], Answer]]:
    return [ok(f"h{n}.test", "A", f"198.51.100.{n}") for n in range(1, count + 1)]


def test_ten_lookups_are_allowed():
    terms = " ".join(f"a:h{n}.test" for n in range(1, 11))
    dns = FakeDns(spf_of("a.test", f"v=spf1 {terms} ip4:192.0.2.3 -all"),
                  *hosts_with_addresses(10))
    assert host(dns) == "pass"


def test_eleven_lookups_are_a_permerror():
    terms = " ".join(f"a:h{n}.test" for n in range(1, 12))
    dns = FakeDns(spf_of("a.test", f"v=spf1 {terms} ip4:192.0.2.3 -all"),
                  *hosts_with_addresses(11))
    result, reason = spf.check_host(dns, IP4, "a.test", "x@a.test")
    assert result == "permerror"
    assert "more than 10 DNS lookups" in reason
    assert ("h11.test", "A") not in dns.asked


def test_lookups_in_includes_count_towards_the_limit():
    dns = FakeDns(spf_of("a.test", "v=spf1 include:b.test a:h1.test a:h2.test -all"),
                  spf_of("b.test", "v=spf1 " + " ".join(f"a:h{n}.test" for n in range(3, 12))
                         + " -all"),
                  *hosts_with_addresses(11))
    # 1 include + 9 in b.test + the first a: of a.test is the 11th.
    assert host(dns) == "permerror"


def test_two_void_lookups_are_allowed_and_the_third_is_a_permerror():
    two = FakeDns(spf_of("a.test", "v=spf1 a:v1.test a:v2.test ip4:192.0.2.3 -all"))
    assert host(two) == "pass"

    three = FakeDns(spf_of("a.test", "v=spf1 a:v1.test exists:v2.test mx:v3.test "
                                     "ip4:192.0.2.3 -all"))
    result, reason = spf.check_host(three, IP4, "a.test", "x@a.test")
    assert result == "permerror"
    assert "void" in reason


@pytest.mark.parametrize("failure", ["timeout", "servfail", "error"])
def test_a_record_that_cannot_be_had_is_a_temperror(failure):
    assert host(FakeDns(status("a.test", "TXT", failure))) == "temperror"


def test_a_failed_lookup_inside_the_record_is_a_temperror():
    dns = FakeDns(spf_of("a.test", "v=spf1 a:slow.test ip4:192.0.2.3 -all"),
                  status("slow.test", "A", "timeout"))
    assert host(dns) == "temperror"


def test_a_failed_include_is_a_temperror():
    dns = FakeDns(spf_of("a.test", "v=spf1 include:slow.test -all"),
                  status("slow.test", "TXT", "servfail"))
    assert host(dns) == "temperror"


def test_mx_matches_the_addresses_of_the_exchanges_within_the_prefix():
    records = (ok("a.test", "MX", "10 mx1.a.test", "20 mx2.a.test"),
               ok("mx1.a.test", "A", "198.51.100.5"),
               ok("mx2.a.test", "A", "192.0.2.200"),
               ok("mx2.a.test", "AAAA", "2001:db8::1"))
    exact = FakeDns(spf_of("a.test", "v=spf1 mx -all"), *records)
    wide = FakeDns(spf_of("a.test", "v=spf1 mx/24//64 -all"), *records)

    assert host(exact) == "fail"
    assert host(exact, ip="192.0.2.200") == "pass"
    assert host(wide) == "pass"
    assert host(wide, ip=IP6) == "pass"
    assert host(wide, ip="2001:db8:1::1") == "fail"


def test_a_with_dual_cidr_matches_both_families():
    dns = FakeDns(spf_of("a.test", "v=spf1 a:x.test/24//64 -all"),
                  ok("x.test", "A", "192.0.2.1"), ok("x.test", "AAAA", "2001:db8::1"))
    assert host(dns) == "pass"
    assert host(dns, ip=IP6) == "pass"
    assert host(dns, ip="192.0.3.1") == "fail"


def test_a_without_a_domain_means_the_current_domain():
    dns = FakeDns(spf_of("a.test", "v=spf1 a -all"), ok("a.test", "A", IP4))
    assert host(dns) == "pass"


def test_exists_expands_macros_and_matches_any_answer():
    dns = FakeDns(spf_of("a.test", "v=spf1 exists:%{ir}.%{l1r-}.%{d}.ex.test -all"),
                  ok("3.2.0.192.strong.a.test.ex.test", "A", "127.0.0.2"))
    assert host(dns, sender=SENDER) == "pass"
    assert host(dns, sender="weak@a.test") == "fail"


def test_a_macro_include_is_followed_when_evaluating():
    dns = FakeDns(spf_of("email.example.com", "v=spf1 include:%{d2}.spf.test -all"),
                  spf_of("example.com.spf.test", "v=spf1 ip4:192.0.2.3 -all"))
    assert host(dns, domain="email.example.com", sender=SENDER) == "pass"


def test_ptr_matches_a_forward_confirmed_name():
    dns = FakeDns(spf_of("a.test", "v=spf1 ptr -all"),
                  ok("3.2.0.192.in-addr.arpa", "PTR", "mail.a.test"),
                  ok("mail.a.test", "A", IP4))
    assert host(dns) == "pass"
    assert host(dns, domain="a.test", ip="192.0.2.4") == "fail"


# ---------------------------------------------------------------- walk


def walk_of(dns: FakeDns, domain: str = "a.test") -> spf.Walk:
    [text], _ = spf.fetch(dns, domain)
    return spf.walk(dns, domain, spf.parse(text))


def test_the_walk_counts_every_branch_even_after_a_match():
    dns = FakeDns(
        spf_of("a.test", "v=spf1 ip4:192.0.2.3 include:i1.test a mx -all"),
        spf_of("i1.test", "v=spf1 include:i2.test exists:x.test ~all"),
        spf_of("i2.test", "v=spf1 a:h1.test -all"),
        ok("a.test", "A", "192.0.2.3"), ok("a.test", "MX", "10 h1.test"),
        ok("x.test", "A", "127.0.0.2"), *hosts_with_addresses(1))

    assert host(dns) == "pass"  # the evaluation stops at ip4
    walk = walk_of(dns)
    # include i1, a, mx; in i1: include i2, exists; in i2: a.
    assert walk.lookups == 6
    assert (walk.voids, walk.loops, walk.problems, walk.unanswered) == (0, [], [], [])


def test_the_walk_counts_a_redirect_and_follows_it():
    dns = FakeDns(spf_of("a.test", "v=spf1 mx redirect=b.test"),
                  spf_of("b.test", "v=spf1 a:h1.test include:c.test -all"),
                  spf_of("c.test", "v=spf1 -all"),
                  ok("a.test", "MX", "10 h1.test"), *hosts_with_addresses(1))
    assert walk_of(dns).lookups == 4


def test_the_walk_does_not_count_a_redirect_beside_all():
    dns = FakeDns(spf_of("a.test", "v=spf1 -all redirect=b.test"))
    walk = walk_of(dns)
    assert walk.lookups == 0
    assert ("b.test", "TXT") not in dns.asked


def test_the_walk_counts_past_ten():
    dns = FakeDns(spf_of("a.test", "v=spf1 include:b.test a:h1.test a:h2.test -all"),
                  spf_of("b.test", "v=spf1 " + " ".join(f"a:h{n}.test" for n in range(3, 12))
                         + " -all"),
                  *hosts_with_addresses(11))
    assert walk_of(dns).lookups == 12


def test_the_walk_finds_an_include_loop_and_stops():
    dns = FakeDns(spf_of("a.test", "v=spf1 include:b.test -all"),
                  spf_of("b.test", "v=spf1 include:c.test -all"),
                  spf_of("c.test", "v=spf1 include:a.test -all"))
    walk = walk_of(dns)
    assert walk.loops == ["include loop: a.test -> b.test -> c.test -> a.test"]
    assert walk.lookups == 3


def test_the_walk_finds_a_redirect_loop():
    dns = FakeDns(spf_of("a.test", "v=spf1 redirect=b.test"),
                  spf_of("b.test", "v=spf1 redirect=a.test"))
    assert walk_of(dns).loops == ["redirect loop: a.test -> b.test -> a.test"]


def test_the_walk_counts_void_lookups():
    dns = FakeDns(spf_of("a.test", "v=spf1 a:v1.test exists:v2.test mx:v3.test "
                                   "include:v4.test a:h1.test -all"),
                  *hosts_with_addresses(1))
    walk = walk_of(dns)
    assert walk.voids == 4
    assert walk.problems == ["include v4.test has no SPF record"]


def test_an_a_term_is_not_void_when_only_one_family_answers():
    dns = FakeDns(spf_of("a.test", "v=spf1 a:six.test -all"),
                  ok("six.test", "AAAA", "2001:db8::1"))
    assert walk_of(dns).voids == 0


def test_the_walk_warns_about_ptr():
    walk = walk_of(FakeDns(spf_of("a.test", "v=spf1 ptr -all")))
    assert walk.lookups == 1
    assert walk.warnings == ["a.test uses ptr, which RFC 7208 says not to use"]


def test_the_walk_counts_a_macro_term_without_following_it():
    dns = FakeDns(spf_of("a.test", "v=spf1 include:%{d2}.spf.test exists:%{i}.x.test -all"))
    walk = walk_of(dns)
    assert walk.lookups == 2
    assert dns.asked == [("a.test", "TXT")]


def test_the_walk_notes_what_did_not_answer():
    dns = FakeDns(spf_of("a.test", "v=spf1 include:slow.test a:slow2.test -all"),
                  status("slow.test", "TXT", "timeout"),
                  status("slow2.test", "A", "servfail"))
    walk = walk_of(dns)
    assert walk.lookups == 2
    assert walk.unanswered == ["the lookup of slow.test TXT timed out",
                               "DNS did not answer for slow2.test A (SERVFAIL)"]
    assert walk.voids == 0


def test_the_walk_reports_broken_includes():
    dns = FakeDns(spf_of("a.test", "v=spf1 include:two.test include:bad.test -all"),
                  ok("two.test", "TXT", "v=spf1 -all", "v=spf1 mx -all"),
                  spf_of("bad.test", "v=spf1 frob -all"))
    problems = walk_of(dns).problems
    assert problems[0] == "include two.test has 2 SPF records"
    assert problems[1].startswith("include bad.test: unknown mechanism")


def test_the_walk_flags_more_than_ten_mx_names():
    dns = FakeDns(spf_of("a.test", "v=spf1 mx -all"),
                  ok("a.test", "MX", *(f"10 mx{n}.a.test" for n in range(11))))
    assert walk_of(dns).problems == ["a.test has more than 10 MX records"]
