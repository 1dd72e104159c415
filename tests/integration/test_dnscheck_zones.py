"""The DNS health checks against real Knot zones, through a real Unbound resolver.

Each case names the one thing that is wrong with its domain and the verdict
the check of it must give; every other check of the domain must be ok. The
zones are in tests/integration/dnsserver.py (`case_zones`).
"""

from __future__ import annotations

import io
import json
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core.resolver import Resolver
from dnscheck import checks
from dnscheck.findings import Finding, Identity
from dnscheck.models import CheckResult, CheckRun, Verdict
from tests.integration.dnsserver import (
    DKIM_SELECTOR,
    DOMAIN_BLOCK_LIST,
    HEALTHY,
    HEALTHY_IDENTITY,
    IDENTITIES,
    IP_BLOCK_LIST,
    MAIL_HOST,
    MAIL_IPV4,
    MAIL_IPV6,
    OUTSIDE_PROBE,
    SILENT,
    SILENT_BLOCK_LIST,
    DnsServers,
)

pytestmark = pytest.mark.daemons

OK, UNKNOWN, WARNING, ERROR = Verdict.OK, Verdict.UNKNOWN, Verdict.WARNING, Verdict.ERROR
TIMEOUT, TRIES = 1.0, 2
# What every check of a domain yields: the keys (check, subject) of healthy.test.
HEALTHY_KEYS = {
    ("mx", ""), ("host-address", MAIL_HOST), ("ptr", MAIL_IPV4), ("ptr", MAIL_IPV6),
    ("spf", ""), ("dkim", DKIM_SELECTOR), ("dmarc", ""), ("mta-sts", ""), ("tls-rpt", ""),
    ("dnsbl", f"{MAIL_IPV4} {IP_BLOCK_LIST}"), ("dnsbl", f"{MAIL_IPV6} {IP_BLOCK_LIST}"),
    ("dbl", DOMAIN_BLOCK_LIST), ("required-address", "postmaster"),
    ("required-address", "abuse"),
}


@dataclass(frozen=True)
class Case:
    domain: str
    # The findings that are not ok, by (check, subject); all others must be ok.
    expect: dict[tuple[str, str], Verdict] = field(default_factory=dict)
    # A pattern the reasons of those findings must show: the right verdict for
    # the right reason.
    reason: str = ""
    identity: Identity | None = None  # None: the host that serves the domain
    target: dict[str, Any] = field(default_factory=dict)  # changes to what the panel knows


def case(id: str, domain: str, expect: dict[tuple[str, str], Verdict] | None = None,
         reason: str = "", **kwargs: Any) -> Any:
    return pytest.param(Case(domain, expect or {}, reason, **kwargs), id=id)


SLOW_BL_IDENTITY = replace(HEALTHY_IDENTITY, ip_zones=(IP_BLOCK_LIST, SILENT_BLOCK_LIST))

CASES = [
    # Healthy, in several ways.
    case("healthy", HEALTHY),
    case("spf-by-address", "spf-ip.test"),
    case("spf-redirect", "spf-redirect.test"),
    case("spf-10-lookups-is-the-limit", "spf-10-lookups.test"),
    case("spf-2-void-lookups-is-the-limit", "spf-2-void.test"),
    case("dmarc-external-rua-authorised", "rua-authorised.test"),
    case("required-by-mailbox-and-catch-all", HEALTHY,
         target={"required": {"postmaster": "mailbox", "abuse": "catch-all"}}),
    # MX
    case("no-mx", "no-mx.test", {("mx", ""): ERROR},
         reason=r"no mx"),
    case("mx-to-cname", "mx-cname.test", {("mx", ""): ERROR},
         reason=r"cname"),
    case("mx-not-ours", "mx-elsewhere.test", {("mx", ""): ERROR},
         reason=r"mx\.other\.test"),
    # PTR (these domains have hosts of their own: see dnsserver.IDENTITIES)
    case("missing-ptr", "no-ptr.test", {("ptr", "192.0.2.20"): ERROR},
         reason=r"no ptr"),
    # The PTR names our host, but the host does not resolve back to the
    # address, so the host's own A record and the MX target are wrong as well.
    case("ptr-not-forward-confirmed", "ptr-unconfirmed.test",
         {("ptr", "192.0.2.21"): ERROR, ("host-address", "mail-unconfirmed.mailhost.test"): ERROR,
          ("mx", ""): ERROR},
         reason=r"does not resolve back"),
    # SPF
    case("spf-missing", "spf-none.test", {("spf", ""): ERROR},
         reason=r"no spf"),
    case("spf-two-records", "spf-two.test", {("spf", ""): ERROR},
         reason=r"2 spf records"),
    case("spf-syntax-error", "spf-syntax.test", {("spf", ""): ERROR},
         reason=r"192\.0\.2\.300"),
    case("spf-11-lookups", "spf-11-lookups.test", {("spf", ""): ERROR},
         reason=r"\b11\b.*more than 10"),
    case("spf-include-loop", "spf-loop.test", {("spf", ""): ERROR},
         reason=r"loop"),
    case("spf-3-void-lookups", "spf-3-void.test", {("spf", ""): ERROR},
         reason=r"\b3\b.*(void|nothing)"),
    case("spf-plus-all", "spf-plus-all.test", {("spf", ""): ERROR},
         reason=r"\+all"),
    case("spf-neutral-all", "spf-neutral-all.test", {("spf", ""): WARNING},
         reason=r"\?all"),
    case("spf-not-our-address", "spf-not-ours.test", {("spf", ""): ERROR},
         reason=r"192\.0\.2\.10"),
    case("spf-not-our-ipv6", "spf-ipv4-only.test", {("spf", ""): ERROR},
         reason=r"2001:db8::10"),
    # DKIM
    case("dkim-missing", "dkim-missing.test", {("dkim", DKIM_SELECTOR): ERROR},
         reason=r"no dkim record"),
    case("dkim-key-mismatch", "dkim-mismatch.test", {("dkim", DKIM_SELECTOR): ERROR},
         reason=r"not the one"),
    case("dkim-short-key", "dkim-short.test", {("dkim", DKIM_SELECTOR): WARNING},
         reason=r"1024"),
    case("dkim-not-configured", HEALTHY, {("dkim", ""): UNKNOWN},
         target={"dkim_keys": ()},
         reason=r"no dkim key"),
    # DMARC
    case("dmarc-missing", "dmarc-missing.test", {("dmarc", ""): ERROR},
         reason=r"no dmarc"),
    case("dmarc-two-records", "dmarc-two.test", {("dmarc", ""): ERROR},
         reason=r"2 dmarc"),
    case("dmarc-bad-policy", "dmarc-bad-policy.test", {("dmarc", ""): ERROR},
         reason=r"p=block"),
    case("dmarc-p-none", "dmarc-none.test", {("dmarc", ""): WARNING},
         reason=r"p=none"),
    case("dmarc-no-rua", "dmarc-no-rua.test", {("dmarc", ""): WARNING},
         reason=r"rua"),
    case("dmarc-external-rua-unauthorised", "rua-unauthorised.test", {("dmarc", ""): WARNING},
         reason=r"other\.test"),
    # MTA-STS and TLS-RPT
    case("mta-sts-missing", "mta-sts-missing.test", {("mta-sts", ""): WARNING},
         reason=r"no mta-sts"),
    case("mta-sts-invalid", "mta-sts-invalid.test", {("mta-sts", ""): ERROR},
         reason=r"\bid\b"),
    case("tls-rpt-missing", "tls-rpt-missing.test", {("tls-rpt", ""): WARNING},
         reason=r"no tls-rpt"),
    case("tls-rpt-invalid", "tls-rpt-invalid.test", {("tls-rpt", ""): ERROR},
         reason=r"rua"),
    # Block lists
    case("dnsbl-listed", "bl-listed.test", {("dnsbl", f"192.0.2.30 {IP_BLOCK_LIST}"): ERROR},
         reason=r"is listed on bl\.test"),
    case("dnsbl-127.255.255.254-is-unknown", "bl-grey.test",
         {("dnsbl", f"192.0.2.31 {IP_BLOCK_LIST}"): UNKNOWN},
         reason=r"127\.255\.255\.254"),
    case("dnsbl-times-out", HEALTHY,
         {("dnsbl", f"{MAIL_IPV4} {SILENT_BLOCK_LIST}"): UNKNOWN,
          ("dnsbl", f"{MAIL_IPV6} {SILENT_BLOCK_LIST}"): UNKNOWN},
         identity=SLOW_BL_IDENTITY,
         reason=r"did not answer|timed out|timeout"),
    case("dbl-listed", "dbl-listed.test", {("dbl", DOMAIN_BLOCK_LIST): ERROR},
         reason=r"is listed on dbl\.test"),
    # Required addresses
    case("no-postmaster-no-abuse", HEALTHY,
         {("required-address", "postmaster"): ERROR, ("required-address", "abuse"): WARNING},
         target={"required": {}},
         reason=r"postmaster"),
    # A zone whose servers never answer: what needs it is unknown, the rest
    # (our host, the block lists, the addresses) is still checked.
    case("zone-times-out", SILENT,
         {(name, ""): UNKNOWN for name in ("mx", "spf", "dmarc", "mta-sts", "tls-rpt")}
         | {("dkim", DKIM_SELECTOR): UNKNOWN},
         reason=r"timed out|not asked|did not answer"),
]


def resolver_for(dns: DnsServers) -> Resolver:
    return Resolver(nameservers=[dns.resolver], timeout=TIMEOUT, tries=TRIES)


def verdicts(findings: list[Finding]) -> dict[tuple[str, str], Verdict]:
    keys = [f.key for f in findings]
    assert len(keys) == len(set(keys)), f"a (check, subject) appears twice: {keys}"
    return {f.key: Verdict(f.verdict) for f in findings}


def explain(findings: list[Finding]) -> str:
    return "\n".join(f"  {f.check} {f.subject!r}: {Verdict(f.verdict).label}: {f.reason}"
                     for f in findings)


def assert_case(c: Case, findings: list[Finding], identity: Identity) -> None:
    wanted = {key: OK for key in expected_keys(identity)}
    if ("dkim", "") in c.expect:  # no key configured: nothing to look up at a selector
        del wanted[("dkim", DKIM_SELECTOR)]
    wanted |= c.expect
    assert verdicts(findings) == wanted, f"{c.domain}:\n{explain(findings)}"
    reasons = " | ".join(f.reason for f in findings if f.key in c.expect)
    assert re.search(c.reason, reasons, re.I), f"{c.domain}: {reasons!r} !~ {c.reason!r}"


def expected_keys(identity: Identity) -> set[tuple[str, str]]:
    return {
        ("mx", ""), ("spf", ""), ("dkim", DKIM_SELECTOR), ("dmarc", ""), ("mta-sts", ""),
        ("tls-rpt", ""), ("required-address", "postmaster"), ("required-address", "abuse"),
        *(("host-address", host) for host in identity.hosts),
        *(("ptr", address) for address in identity.addresses),
        *(("dnsbl", f"{address} {zone}")
          for address in identity.addresses for zone in identity.ip_zones),
        *(("dbl", zone) for zone in identity.domain_zones),
    }


# ---------------------------------------------------------------- the harness itself


def test_knot_serves_and_unbound_resolves_the_zones(dns_servers_session: DnsServers):
    dns = dns_servers_session
    direct = dns.kdig("+short", "MX", HEALTHY, port=dns.knot_port)
    assert direct.stdout.strip() == f"10 {MAIL_HOST}."
    assert dns.kdig("+short", "-x", MAIL_IPV4).stdout.strip() == f"{MAIL_HOST}."
    assert dns.kdig("+short", "-x", MAIL_IPV6).stdout.strip() == f"{MAIL_HOST}."
    key = "".join(re.findall(r'"([^"]*)"', dns.kdig(
        "+short", "TXT", f"{DKIM_SELECTOR}._domainkey.{HEALTHY}").stdout))
    assert key == f"v=DKIM1; k=rsa; p={dns.keys.ours}"
    assert dns.kdig("+short", "A", f"30.2.0.192.{IP_BLOCK_LIST}").stdout.strip() == "127.0.0.2"


def test_unbound_refuses_every_name_outside_the_test_zones(dns_servers_session: DnsServers):
    dns = dns_servers_session
    started = time.monotonic()
    refused = dns.kdig("A", OUTSIDE_PROBE)
    assert "status: REFUSED" in refused.stdout, refused.stdout + refused.stderr
    assert resolver_for(dns).lookup(OUTSIDE_PROBE, "A").failed
    assert time.monotonic() - started < 1
    assert re.search(rf"\. refuse \S+ {re.escape(OUTSIDE_PROBE)}\. A IN", dns.unbound_log())
    assert f"resolving {OUTSIDE_PROBE}." not in dns.unbound_log()


def test_the_silent_zone_never_answers(dns_servers_session: DnsServers):
    dns = dns_servers_session
    before = dns.black_hole.received
    answer = Resolver(nameservers=[dns.resolver], timeout=0.5, tries=1).lookup(
        f"probe.{SILENT}", "TXT")
    assert answer.status == "timeout"
    for _ in range(20):
        if dns.black_hole.received > before:
            break
        time.sleep(0.1)
    assert dns.black_hole.received > before, "unbound did not ask the black hole"
    # Over TCP too, asked directly.
    direct = dns.kdig("+tcp", "SOA", SILENT, port=dns.black_hole.port)
    assert direct.returncode != 0 and "NOERROR" not in direct.stdout


# ---------------------------------------------------------------- the cases


@pytest.mark.parametrize("c", CASES)
def test_check_domain(dns_servers_session: DnsServers, c: Case):
    dns = dns_servers_session
    identity = c.identity or dns.identity_for(c.domain)
    target = dns.target(c.domain, **c.target)
    findings = checks.check_domain(target, identity, resolver_for(dns))
    assert_case(c, findings, identity)
    for finding in findings:
        if finding.verdict == UNKNOWN and c.domain == SILENT:
            assert re.search(r"timed out|did not answer|not asked", finding.reason), finding


def test_check_many_is_not_stalled_by_a_silent_zone(dns_servers_session: DnsServers):
    dns = dns_servers_session
    # Every domain served by the healthy host, as the panel knows it.
    plain = [p.values[0] for p in CASES]
    by_domain = {c.domain: c for c in plain
                 if c.identity is None and not c.target and c.domain not in IDENTITIES}
    assert SILENT in by_domain
    budget = 5.0
    resolver = resolver_for(dns)
    started = time.monotonic()
    results = checks.check_many([dns.target(d) for d in by_domain], HEALTHY_IDENTITY,
                                resolver=resolver, concurrency=8, budget=budget)
    elapsed = time.monotonic() - started
    assert set(results) == set(by_domain)
    for domain, c in by_domain.items():
        assert_case(c, results[domain], HEALTHY_IDENTITY)
    assert all(f.verdict == OK for f in results[HEALTHY])
    assert elapsed < budget + TIMEOUT * TRIES, f"check_many took {elapsed:.1f}s"
    assert resolver.queries > 0


# ---------------------------------------------------------------- the command


def test_dnscheck_command_stores_runs_and_fails_on_errors(dns: DnsServers, db):
    broken = "spf-plus-all.test"
    for name in (HEALTHY, broken):
        dns.create_domain(name)

    out = io.StringIO()
    call_command("dnscheck", HEALTHY, "--json", stdout=out)
    (report,) = json.loads(out.getvalue())
    assert report["domain"] == HEALTHY
    assert report["worst"] == "ok"
    assert {(r["check"], r["subject"]) for r in report["results"]} == HEALTHY_KEYS
    assert {r["verdict"] for r in report["results"]} == {"ok"}

    out = io.StringIO()
    with pytest.raises(CommandError, match=re.escape(broken)):
        call_command("dnscheck", HEALTHY, broken, "--json", stdout=out)
    reports = {r["domain"]: r for r in json.loads(out.getvalue())}
    assert reports[HEALTHY]["worst"] == "ok"
    assert reports[broken]["worst"] == "error"
    assert [(r["check"], r["verdict"]) for r in reports[broken]["results"]
            if r["verdict"] != "ok"] == [("spf", "error")]

    runs = CheckRun.objects.order_by("pk")
    assert [(r.domain.name, r.state, r.worst) for r in runs] == [
        (HEALTHY, CheckRun.State.DONE, OK),
        (HEALTHY, CheckRun.State.DONE, OK),
        (broken, CheckRun.State.DONE, ERROR),
    ]
    spf = CheckResult.objects.get(run=runs[2], check_name="spf")
    assert spf.verdict == ERROR
    assert "+all" in spf.reason
    assert spf.record  # the record to publish instead
    assert CheckResult.objects.filter(run=runs[1]).exclude(verdict=OK).count() == 0


# ---------------------------------------------------------------- nothing left loopback


def test_no_query_left_loopback(dns_servers_session: DnsServers):
    """Runs last in this module: every server Unbound heard from is on loopback, and
    the only name it refused is the harness's own probe."""
    log = dns_servers_session.unbound_log()
    servers = set(re.findall(r"reply from <[^>]*> (\S+)#\d+", log))
    assert servers <= {"127.0.0.1"}, servers
    refused = set(re.findall(r"\. refuse \S+ (\S+)\. ", log))
    assert refused <= {OUTSIDE_PROBE}, refused
