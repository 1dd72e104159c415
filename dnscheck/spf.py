"""SPF (RFC 7208): parsing, a walk of the whole include tree, and check_host().

Written here rather than taken from pyspf: pyspf resolves through a
module-global DNS function (one resolver for the whole process, not per
batch with its own budget), stops at the first problem, and does not report
how many lookups a record costs across all its branches, which is what an
admin needs to see before receivers start failing it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from core.resolver import Answer

MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX_OR_PTR_NAMES = 10
LOOKUP_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})
MECHANISMS = LOOKUP_MECHANISMS | {"all", "ip4", "ip6"}
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
# Macros (RFC 7208 section 7): %{letter digits r delimiters}, %%, %_ and %-.
# c, r and t may appear only in exp= text; a digit count is never 0.
_TOKEN = re.compile(r"%\{([slodiphcrtv])([1-9]\d*)?(r?)([.\-+,/_=]*)\}|%%|%_|%-", re.I)
_MACRO_STRING = re.compile(
    r"(?:%\{[slodiphcrtv](?:[1-9]\d*)?r?[.\-+,/_=]*\}|%%|%_|%-|[!-$&-~])*", re.I)
_DOMAIN_SPEC = re.compile(r"(?:%\{[slodiphv](?:[1-9]\d*)?r?[.\-+,/_=]*\}|%%|%_|%-|[!-$&-~])*",
                          re.I)
_MODIFIER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")

Lookup = Callable[[str, str], Answer]


class SpfSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Term:
    qualifier: str  # "+", "-", "~", "?"
    mechanism: str
    domain_spec: str = ""
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    cidr4: int = 32
    cidr6: int = 128

    def __str__(self) -> str:
        text = ("" if self.qualifier == "+" else self.qualifier) + self.mechanism
        if self.network is not None:
            return f"{text}:{self.network}"
        if self.domain_spec:
            text += f":{self.domain_spec}"
        if self.cidr4 != 32:
            text += f"/{self.cidr4}"
        if self.cidr6 != 128:
            text += f"//{self.cidr6}"
        return text


@dataclass
class Record:
    text: str
    terms: list[Term] = field(default_factory=list)
    redirect: str = ""
    explanation: str = ""

    @property
    def all_term(self) -> Term | None:
        return next((t for t in self.terms if t.mechanism == "all"), None)


def is_spf(text: str) -> bool:
    lowered = text.lower()
    return lowered == "v=spf1" or lowered.startswith("v=spf1 ")


def parse(text: str) -> Record:
    if not is_spf(text):
        raise SpfSyntaxError("the record does not start with v=spf1")
    record = Record(text)
    for word in text.split()[1:]:
        name, sep, value = word.partition("=")
        if sep and _MODIFIER_NAME.fullmatch(name):
            _modifier(record, name.lower(), value)
        else:
            record.terms.append(_term(word))
    return record


def _modifier(record: Record, name: str, value: str) -> None:
    if not _MACRO_STRING.fullmatch(value):
        raise SpfSyntaxError(f"bad macro in {name}={value}")
    if name in {"redirect", "exp"}:
        if getattr(record, "redirect" if name == "redirect" else "explanation"):
            raise SpfSyntaxError(f"{name}= appears twice")
        if not value:
            raise SpfSyntaxError(f"{name}= needs a domain")
        if name == "redirect":
            record.redirect = value
        else:
            record.explanation = value


def _term(word: str) -> Term:
    qualifier = "+"
    if word[:1] in QUALIFIERS:
        qualifier, word = word[0], word[1:]
    # The argument runs to the first '/' that is not inside a macro (a macro
    # may use '/' as its delimiter); what follows is the prefix length.
    match = re.fullmatch(r"([A-Za-z][A-Za-z0-9._-]*)(?::((?:%\{[^}]*\}|[^/])*))?"
                         r"((?:/\d+)?(?://\d+)?)", word)
    if not match:
        raise SpfSyntaxError(f"cannot read the term {word!r}")
    mechanism, argument, cidr = match.group(1).lower(), match.group(2), match.group(3)
    if mechanism not in MECHANISMS:
        raise SpfSyntaxError(f"unknown mechanism {mechanism!r}")
    if mechanism in {"ip4", "ip6"}:
        if not argument:
            raise SpfSyntaxError(f"{mechanism} needs an address")
        try:
            network = ipaddress.ip_network(f"{argument}{cidr}", strict=False)
        except ValueError:
            raise SpfSyntaxError(f"{mechanism}:{argument}{cidr} is not a network") from None
        if network.version != int(mechanism[2]):
            raise SpfSyntaxError(f"{mechanism}:{argument} is not an IPv{mechanism[2]} address")
        return Term(qualifier, mechanism, network=network)
    if mechanism == "all" and (argument is not None or cidr):
        raise SpfSyntaxError("all takes no argument")
    if mechanism in {"include", "exists"} and not argument:
        raise SpfSyntaxError(f"{mechanism} needs a domain")
    if argument is not None and not _valid_domain_spec(argument):
        raise SpfSyntaxError(f"{mechanism}:{argument} is not a valid domain")
    cidr4, cidr6 = 32, 128
    if cidr:
        if mechanism not in {"a", "mx"}:
            raise SpfSyntaxError(f"{mechanism} takes no prefix length")
        four, _, six = cidr.partition("//")
        cidr4 = int(four[1:]) if four.startswith("/") and four[1:] else 32
        cidr6 = int(six) if six else 128
        if cidr.startswith("//"):
            cidr4, cidr6 = 32, int(cidr[2:])
        if cidr4 > 32 or cidr6 > 128:
            raise SpfSyntaxError(f"bad prefix length in {mechanism}{cidr}")
    return Term(qualifier, mechanism, argument or "", cidr4=cidr4, cidr6=cidr6)


def _valid_domain_spec(spec: str) -> bool:
    # '%' can only appear as part of a macro: the pattern has no bare '%'.
    if not spec or not _DOMAIN_SPEC.fullmatch(spec):
        return False
    if "%" in spec:
        return True
    plain = spec
    return bool(re.fullmatch(r"[A-Za-z0-9_.-]+\.?", plain)) and "." in plain.rstrip(".")


def expand(spec: str, *, ip: str, domain: str, sender: str) -> str:
    """Macro expansion (RFC 7208 section 7), for domain-specs."""
    local, _, sender_domain = sender.rpartition("@")
    address = ipaddress.ip_address(ip) if ip else None
    if address is None:
        dotted, version = "", "in-addr"
    elif address.version == 4:
        dotted, version = str(address), "in-addr"
    else:
        dotted, version = ".".join(address.exploded.replace(":", "")), "ip6"
    values = {"s": sender, "l": local or "postmaster", "o": sender_domain or domain,
              "d": domain, "i": dotted, "p": "unknown", "v": version, "h": domain,
              "c": str(address or ""), "r": "unknown", "t": "0"}
    escapes = {"%%": "%", "%_": " ", "%-": "%20"}

    def one(match: re.Match[str]) -> str:
        if match.group(0) in escapes:
            return escapes[match.group(0)]
        letter, digits, reverse, delimiters = match.groups()
        parts = re.split("[" + re.escape(delimiters or ".") + "]", values[letter.lower()])
        if reverse:
            parts.reverse()
        if digits:
            parts = parts[-int(digits):]
        return ".".join(parts)

    # One pass over the tokens: "%%_" is a '%' then '_', not '%' then a space.
    result = _TOKEN.sub(one, spec)
    result = result.rstrip(".")
    while len(result) > 253 and "." in result:
        result = result.split(".", 1)[1]
    return result


@dataclass
class Walk:
    """What the whole tree of a domain's SPF costs and where it breaks."""

    lookups: int = 0
    voids: int = 0
    loops: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # permanent errors
    warnings: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)  # lookups that failed


def fetch(lookup: Lookup, domain: str) -> tuple[list[str], Answer]:
    answer = lookup(domain, "TXT")
    return [r for r in answer.records if is_spf(r)], answer


def walk(lookup: Lookup, domain: str, record: Record) -> Walk:
    """Count every DNS-querying term of `record` and its includes and redirect.

    Unlike an evaluation, which stops at the first match, this follows every
    branch: the limits must hold whichever address a receiver checks.
    """
    result = Walk()
    _walk(lookup, domain, record, [domain], result)
    return result


def _walk(lookup: Lookup, domain: str, record: Record, chain: list[str], out: Walk) -> None:
    for term in record.terms:
        if term.mechanism not in LOOKUP_MECHANISMS:
            continue
        out.lookups += 1
        if term.mechanism == "ptr":
            out.warnings.append(f"{domain} uses ptr, which RFC 7208 says not to use")
        target = term.domain_spec or domain
        if "%" in target:
            continue  # depends on the sender or address: cannot be followed here
        target = target.rstrip(".").lower()
        if term.mechanism == "include":
            _follow(lookup, target, chain, out, "include")
        elif term.mechanism in {"a", "exists"}:
            _count_void(lookup, target, "A", out, also="AAAA" if term.mechanism == "a" else "")
        elif term.mechanism == "mx":
            answer = lookup(target, "MX")
            _note_void(answer, out)
            if len(answer.records) > MAX_MX_OR_PTR_NAMES:
                out.problems.append(f"{target} has more than {MAX_MX_OR_PTR_NAMES} MX records")
    if record.redirect and record.all_term is None:
        out.lookups += 1
        if "%" not in record.redirect:
            _follow(lookup, record.redirect.rstrip(".").lower(), chain, out, "redirect")


def _follow(lookup: Lookup, target: str, chain: list[str], out: Walk, how: str) -> None:
    if target in chain:
        out.loops.append(f"{how} loop: " + " -> ".join([*chain, target]))
        return
    records, answer = fetch(lookup, target)
    if answer.failed:
        out.unanswered.append(answer.why())
        return
    _note_void(answer, out)
    if not records:
        out.problems.append(f"{how} {target} has no SPF record")
        return
    if len(records) > 1:
        out.problems.append(f"{how} {target} has {len(records)} SPF records")
        return
    try:
        nested = parse(records[0])
    except SpfSyntaxError as error:
        out.problems.append(f"{how} {target}: {error}")
        return
    _walk(lookup, target, nested, [*chain, target], out)


def _count_void(lookup: Lookup, name: str, rdtype: str, out: Walk, also: str = "") -> None:
    answers = [lookup(name, rdtype)] + ([lookup(name, also)] if also else [])
    if any(a.failed for a in answers):
        out.unanswered.append(next(a for a in answers if a.failed).why())
    elif all(a.void for a in answers):
        out.voids += 1


def _note_void(answer: Answer, out: Walk) -> None:
    if answer.failed:
        out.unanswered.append(answer.why())
    elif answer.void:
        out.voids += 1


# ---------------------------------------------------------------- check_host


class _Evaluation:
    def __init__(self, lookup: Lookup, ip: str, sender: str) -> None:
        self.lookup = lookup
        self.ip = ipaddress.ip_address(ip)
        self.sender = sender
        self.lookups = 0
        self.voids = 0


class _Stop(Exception):
    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


def check_host(lookup: Lookup, ip: str, domain: str, sender: str) -> tuple[str, str]:
    """The SPF result for mail from `sender` at `ip`, and why."""
    evaluation = _Evaluation(lookup, ip, sender)
    try:
        return _check(evaluation, domain, [domain])
    except _Stop as stop:
        return stop.result, stop.reason


def _check(ev: _Evaluation, domain: str, chain: list[str]) -> tuple[str, str]:
    records, answer = fetch(ev.lookup, domain)
    if answer.failed:
        return "temperror", answer.why()
    if not records:
        return "none", f"{domain} has no SPF record"
    if len(records) > 1:
        return "permerror", f"{domain} has {len(records)} SPF records"
    try:
        record = parse(records[0])
    except SpfSyntaxError as error:
        return "permerror", f"{domain}: {error}"
    for term in record.terms:
        if term.mechanism in LOOKUP_MECHANISMS:
            _spend(ev)
        if _matches(ev, term, domain, chain):
            return QUALIFIERS[term.qualifier], f"matched {term} in {domain}"
    if record.redirect and record.all_term is None:
        _spend(ev)
        target = expand(record.redirect, ip=str(ev.ip), domain=domain, sender=ev.sender)
        if target.lower() in chain:
            return "permerror", f"redirect loop at {target}"
        result, reason = _check(ev, target.lower(), [*chain, target.lower()])
        return ("permerror", reason) if result == "none" else (result, reason)
    return "neutral", f"nothing in {domain}'s record matched"


def _spend(ev: _Evaluation) -> None:
    ev.lookups += 1
    if ev.lookups > MAX_LOOKUPS:
        raise _Stop("permerror", f"more than {MAX_LOOKUPS} DNS lookups")


def _void(ev: _Evaluation, answer: Answer) -> None:
    if answer.failed:
        raise _Stop("temperror", answer.why())
    if answer.void:
        ev.voids += 1
        if ev.voids > MAX_VOID_LOOKUPS:
            raise _Stop("permerror", f"more than {MAX_VOID_LOOKUPS} void lookups")


def _matches(ev: _Evaluation, term: Term, domain: str, chain: list[str]) -> bool:
    if term.mechanism == "all":
        return True
    if term.mechanism in {"ip4", "ip6"}:
        return term.network is not None and ev.ip.version == term.network.version \
            and ev.ip in term.network
    target = expand(term.domain_spec or domain, ip=str(ev.ip), domain=domain,
                    sender=ev.sender).lower()
    if term.mechanism == "include":
        if target in chain:
            raise _Stop("permerror", f"include loop at {target}")
        result, reason = _check(ev, target, [*chain, target])
        if result in {"temperror"}:
            raise _Stop(result, reason)
        if result in {"permerror", "none"}:
            raise _Stop("permerror", reason)
        return result == "pass"
    if term.mechanism == "exists":
        answer = ev.lookup(target, "A")
        _void(ev, answer)
        return bool(answer.records)
    if term.mechanism == "a":
        return _address_match(ev, target, term)
    if term.mechanism == "mx":
        answer = ev.lookup(target, "MX")
        _void(ev, answer)
        exchanges = [r.split()[1] for r in answer.records]
        if len(exchanges) > MAX_MX_OR_PTR_NAMES:
            raise _Stop("permerror", f"{target} has more than {MAX_MX_OR_PTR_NAMES} MX records")
        return any(_address_match(ev, host, term, count_void=False) for host in exchanges)
    if term.mechanism == "ptr":
        reverse = ev.lookup(_reverse_name(ev.ip), "PTR")
        if reverse.failed:
            return False
        for name in reverse.records[:MAX_MX_OR_PTR_NAMES]:
            if (name == target or name.endswith("." + target)) and \
                    _address_match(ev, name, term, count_void=False):
                return True
    return False


def _address_match(ev: _Evaluation, name: str, term: Term, count_void: bool = True) -> bool:
    rdtype = "A" if ev.ip.version == 4 else "AAAA"
    answer = ev.lookup(name, rdtype)
    if count_void:
        _void(ev, answer)
    elif answer.failed:
        raise _Stop("temperror", answer.why())
    prefix = term.cidr4 if ev.ip.version == 4 else term.cidr6
    for address in answer.records:
        try:
            if ev.ip in ipaddress.ip_network(f"{address}/{prefix}", strict=False):
                return True
        except ValueError:
            continue
    return False


def _reverse_name(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return address.reverse_pointer
