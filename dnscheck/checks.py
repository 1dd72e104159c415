"""The DNS health checks. Pure functions of DNS answers and what the panel knows.

Each check returns Findings; none raises for DNS trouble. A lookup that could
not be answered makes the checks that need it `unknown`, never `ok` or
`error`: a slow resolver must not raise a false alarm.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from core.resolver import Answer, Resolver, Session
from core.tags import BadTagList, parse_tags
from dkim import records as dkim_records
from dnscheck import spf
from dnscheck.findings import DkimExpected, Finding, Identity, Target
from dnscheck.models import Verdict

log = logging.getLogger(__name__)

OK, UNKNOWN, WARNING, ERROR = Verdict.OK, Verdict.UNKNOWN, Verdict.WARNING, Verdict.ERROR
DMARC_POLICIES = {"none", "quarantine", "reject"}
MTA_STS_ID = re.compile(r"[A-Za-z0-9]{1,32}")
DMARC_SUGGESTION = "v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"
BLOCKLIST_ERRORS = ipaddress.ip_network("127.255.255.0/24")
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def check_many(targets: Sequence[Target], identity: Identity, *,
               resolver: Resolver | None = None, concurrency: int | None = None,
               budget: float | None = None) -> dict[str, Findings]:
    """Check every target in parallel; each domain has its own time budget."""
    resolver = resolver or Resolver.from_settings()
    workers = max(1, min(concurrency or 32, len(targets) or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dnscheck") as pool:
        futures = {t.name: pool.submit(check_domain, t, identity, resolver, budget)
                   for t in targets}
        return {name: future.result() for name, future in futures.items()}


class Findings(list[Finding]):
    """A domain's findings, and the resolver that answered none of its lookups, if so."""

    silent_resolver: str = ""


def check_domain(target: Target, identity: Identity, resolver: Resolver,
                 budget: float | None = None) -> Findings:
    lookup = resolver.session(budget, zone=target.name)
    findings = Findings()
    for check in CHECKS:
        try:
            findings.extend(check(target, identity, lookup))
        except Exception:
            # A bug in one check must not cost the admin the others.
            log.exception("DNS check %s of %s failed", check.__name__, target.name)
            findings.append(Finding(check.__name__.removeprefix("check_").replace("_", "-"),
                                    "", UNKNOWN, "this check failed inside mailadmin"))
    if lookup.resolver_silent:
        # Then every result says "timed out" or "was not asked": the page
        # says once which resolver to look at instead.
        findings.silent_resolver = resolver.describe()
    return findings


def _unknown(check: str, answer: Answer, subject: str = "") -> Finding:
    return Finding(check, subject, UNKNOWN, _capital(answer.why()) + ".")


def _capital(text: str) -> str:
    """Capitalise a reason's first word, unless it is a name or a tag (example.org, p=none)."""
    first = text.split(" ", 1)[0]
    if any(c in first for c in ".=@:+?~") or not first:
        return text
    return text[:1].upper() + text[1:]


def _txt(owner: str, value: str) -> str:
    return f"{owner}. IN TXT {dkim_records.quoted_txt(value)[0]}"


def _worst(verdicts: Iterable[Verdict]) -> Verdict:
    return max(verdicts, default=OK)


# ---------------------------------------------------------------- MX and the host


def check_mx(target: Target, identity: Identity, lookup: Session) -> list[Finding]:
    domain = target.name
    if not identity.hosts:
        # Nothing to compare with, and no record to suggest: not an error of the domain.
        return [Finding("mx", "", UNKNOWN,
                        identity.unset_hostname("the MX record to publish"))]
    fix = "\n".join(f"{domain}. IN MX {10 * (i + 1)} {host}."
                    for i, host in enumerate(identity.hosts))
    answer = lookup(domain, "MX")
    if answer.failed:
        return [_unknown("mx", answer)]
    if answer.status == "nxdomain":
        return [Finding("mx", "", ERROR, f"{domain} does not exist in DNS.", record=fix)]
    if not answer.records:
        return [Finding("mx", "", ERROR, "No MX record: senders have nowhere to deliver.",
                        expected=", ".join(identity.hosts), record=fix)]
    pairs = sorted((int(p), host) for p, host in (r.split(" ", 1) for r in answer.records))
    observed = ", ".join(f"{p} {h}" for p, h in pairs)
    if any(host in {"", "."} for _, host in pairs):
        return [Finding("mx", "", ERROR, "A null MX says the domain receives no mail.",
                        observed=observed, record=fix)]
    # A target that is a CNAME to this host still means this host; it is
    # reported as the CNAME error it is, not as "points elsewhere".
    ours = [(p, h) for p, h in pairs
            if h in identity.hosts or lookup(h, "A").cname in identity.hosts]
    if not ours:
        return [Finding("mx", "", ERROR,
                        f"MX points at {', '.join(h for _, h in pairs)}, not at this mail host.",
                        observed=observed, expected=", ".join(identity.hosts), record=fix)]
    problems: list[tuple[Verdict, str]] = []
    for _, host in ours:
        problems.extend(_mx_target(host, identity, lookup))
    best = min(p for p, _ in ours)
    ahead = [h for p, h in pairs if p < best and (p, h) not in ours]
    if ahead:
        problems.append((WARNING, f"{', '.join(ahead)} take mail before this host does"))
    if not problems:
        return [Finding("mx", "", OK, "MX points at this mail host.", observed=observed)]
    verdict = _worst(v for v, _ in problems)
    reason = "; ".join(text for v, text in problems if v == verdict)
    return [Finding("mx", "", verdict, _capital(reason) + ".", observed=observed,
                    expected=", ".join(identity.hosts),
                    record=fix if verdict == ERROR else "")]


def _mx_target(host: str, identity: Identity, lookup: Session) -> list[tuple[Verdict, str]]:
    first = lookup(host, "A")
    if first.cname:
        return [(ERROR, f"the MX target {host} is a CNAME (to {first.cname}); "
                        "MX must name a host with its own A/AAAA records")]
    found, failure = lookup.addresses(host)
    if failure:
        return [(UNKNOWN, failure.why())]
    if not identity.addresses:
        return [] if found else [(ERROR, f"the MX target {host} has no A or AAAA record")]
    missing = [a for a in identity.addresses if a not in found]
    extra = [a for a in found if a not in identity.addresses]
    out: list[tuple[Verdict, str]] = []
    if missing:
        out.append((ERROR, f"{host} does not resolve to {', '.join(missing)}"))
    if extra:
        out.append((WARNING, f"{host} also resolves to {', '.join(extra)}, "
                             "which is not one of this host's addresses"))
    return out


def check_host_address(target: Target, identity: Identity, lookup: Session) -> list[Finding]:
    if not identity.hosts:
        return [Finding("host-address", "", UNKNOWN,
                        identity.unset_hostname("the address records it needs"))]
    findings = []
    for host in identity.hosts:
        if not identity.addresses:
            findings.append(Finding(
                "host-address", host, UNKNOWN,
                "The public addresses are not set on the Mail host page."))
            continue
        found, failure = lookup.addresses(host)
        if failure:
            findings.append(_unknown("host-address", failure, host))
            continue
        missing = [a for a in identity.addresses if a not in found]
        extra = [a for a in found if a not in identity.addresses]
        records = "\n".join(
            f"{host}. IN {'A' if ipaddress.ip_address(a).version == 4 else 'AAAA'} {a}"
            for a in identity.addresses)
        observed, expected = ", ".join(found) or "nothing", ", ".join(identity.addresses)
        if missing:
            findings.append(Finding("host-address", host, ERROR,
                                    f"{host} does not resolve to {', '.join(missing)}.",
                                    observed, expected, records))
        elif extra:
            findings.append(Finding("host-address", host, WARNING,
                                    f"{host} also resolves to {', '.join(extra)}.",
                                    observed, expected))
        else:
            findings.append(Finding("host-address", host, OK,
                                    f"{host} resolves to this host's addresses.", observed))
    return findings


def check_ptr(target: Target, identity: Identity, lookup: Session) -> list[Finding]:
    findings = []
    hostname = identity.hostname
    for address in identity.addresses:
        if not hostname:
            findings.append(Finding("ptr", address, UNKNOWN,
                                    identity.unset_hostname("the PTR record to ask for")))
            continue
        ip = ipaddress.ip_address(address)
        reverse = ip.reverse_pointer
        fix = f"{reverse}. IN PTR {hostname}."
        answer = lookup(reverse, "PTR")
        if answer.failed:
            findings.append(_unknown("ptr", answer, address))
            continue
        if not answer.records:
            findings.append(Finding(
                "ptr", address, ERROR,
                f"{address} has no PTR record; many receivers refuse mail from it.",
                "nothing", hostname, fix + "  ; set by whoever runs the address block"))
            continue
        confirmed: list[tuple[str, bool | None]] = []
        for name in answer.records:
            resolved, failure = lookup.addresses(name)
            if failure and not resolved:
                confirmed.append((name, None))
            else:
                confirmed.append((name, address in resolved))
        observed = ", ".join(answer.records)
        if any(ok is None for _, ok in confirmed) and not any(ok for _, ok in confirmed):
            findings.append(Finding("ptr", address, UNKNOWN,
                                    f"Could not resolve {observed} back to check it.", observed))
        elif hostname not in answer.records:
            back = " and does not resolve back" if not any(ok for _, ok in confirmed) else ""
            findings.append(Finding(
                "ptr", address, ERROR,
                f"PTR of {address} is {observed}{back}; it should be {hostname}.",
                observed, hostname, fix + "  ; set by whoever runs the address block"))
        elif not dict(confirmed).get(hostname):
            kind = "A" if ip.version == 4 else "AAAA"
            findings.append(Finding(
                "ptr", address, ERROR,
                f"PTR of {address} is {hostname}, but {hostname} does not resolve back to it.",
                observed, f"{hostname} {kind} {address}", f"{hostname}. IN {kind} {address}"))
        elif len(answer.records) > 1:
            findings.append(Finding("ptr", address, WARNING,
                                    f"{address} has {len(answer.records)} PTR records; "
                                    "receivers may pick any of them.", observed, hostname))
        else:
            findings.append(Finding("ptr", address, OK,
                                    f"{address} maps to {hostname} and back.", observed))
    return findings


# ---------------------------------------------------------------- SPF


def check_spf(target: Target, identity: Identity, lookup: Session) -> list[Finding]:
    domain = target.name
    suggestion = spf_suggestion(identity)
    records, answer = spf.fetch(lookup, domain)
    if answer.failed:
        return [_unknown("spf", answer)]
    if not records:
        return [Finding("spf", "", ERROR, "No SPF record: receivers cannot tell who may send.",
                        expected=suggestion, record=_txt(domain, suggestion))]
    if len(records) > 1:
        return [Finding("spf", "", ERROR,
                        f"{len(records)} SPF records: receivers treat this as a permanent "
                        "error; publish one.", "\n".join(records), suggestion,
                        _txt(domain, _spf_with_ours(records[0], identity)))]
    text = records[0]
    try:
        record = spf.parse(text)
    except spf.SpfSyntaxError as error:
        return [Finding("spf", "", ERROR, f"The SPF record does not parse: {error}.", text,
                        suggestion, _txt(domain, suggestion))]
    tree = spf.walk(lookup, domain, record)
    errors: list[str] = []
    warnings: list[str] = []
    if tree.loops:
        errors.append(tree.loops[0])
    if tree.lookups > spf.MAX_LOOKUPS:
        errors.append(f"{tree.lookups} DNS-querying terms, more than {spf.MAX_LOOKUPS}")
    if tree.voids > spf.MAX_VOID_LOOKUPS:
        errors.append(f"{tree.voids} lookups find nothing, more than {spf.MAX_VOID_LOOKUPS}")
    errors.extend(tree.problems)
    warnings.extend(tree.warnings)
    results = []
    for address in identity.addresses:
        result, why = spf.check_host(lookup, address, domain, f"postmaster@{domain}")
        results.append(f"{address}: {result}")
        if result == "temperror":
            return [Finding("spf", "", UNKNOWN, f"Could not evaluate SPF: {why}.", text)]
        if result != "pass" and not errors:
            errors.append(f"mail from {address} gets {result}, not pass ({why})")
    if tree.unanswered and not errors:
        return [Finding("spf", "", UNKNOWN, f"Could not follow the SPF record: "
                                            f"{tree.unanswered[0]}.", text)]
    all_term = record.all_term
    if all_term is not None and all_term.qualifier == "+":
        errors.insert(0, "+all lets anyone send as this domain")
    elif all_term is not None and all_term.qualifier == "?":
        warnings.append("?all says nothing about other senders; end with ~all or -all")
    elif all_term is None and not record.redirect:
        warnings.append("the record ends without an all term; end with ~all or -all")
    if not identity.addresses:
        warnings.append("the public addresses are not configured, so they were not evaluated")
    observed = f"{text}\n{tree.lookups} DNS-querying terms, {tree.voids} void lookups" + (
        "\n" + "; ".join(results) if results else "")
    if errors:
        fixed = _spf_with_ours(text, identity) if not tree.loops else suggestion
        record_line = _txt(domain, fixed) if fixed != text else ""
        return [Finding("spf", "", ERROR, _sentence(errors), observed, suggestion, record_line)]
    if warnings:
        return [Finding("spf", "", WARNING, _sentence(warnings), observed)]
    return [Finding("spf", "", OK, "SPF passes for this host's addresses.", observed)]


def _sentence(parts: list[str]) -> str:
    return _capital("; ".join(parts)) + "."


def spf_suggestion(identity: Identity) -> str:
    terms = [f"ip4:{a}" for a in identity.ipv4] + [f"ip6:{a}" for a in identity.ipv6]
    return "v=spf1 " + (" ".join(terms) if terms else "mx") + " -all"


def _spf_with_ours(text: str, identity: Identity) -> str:
    """The record with our addresses added before its all/redirect, and +all/?all made -all."""
    words = text.split()
    ours = [f"ip4:{a}" for a in identity.ipv4] + [f"ip6:{a}" for a in identity.ipv6]
    ours = [w for w in ours if w not in words]
    at = next((i for i, w in enumerate(words) if w.lower().lstrip("+-~?") == "all"
               or w.lower().startswith("redirect=")), len(words))
    words[at:at] = ours
    words = ["-all" if w.lower() in {"+all", "all", "?all"} else w for w in words]
    if not any(w.lower().lstrip("+-~?") == "all" or w.lower().startswith("redirect=")
               for w in words):
        words.append("-all")
    return " ".join(words)


# ---------------------------------------------------------------- DKIM


def check_dkim(target: Target, identity: Identity, lookup: Session) -> list[Finding]:
    """One finding per key the domain should publish, by selector."""
    expected = target.dkim_keys
    if not expected:
        return [Finding("dkim", "", UNKNOWN,
                        "No DKIM key is set for this domain, so there is nothing to compare: "
                        "set it on the domain's page under DNS health, \"Set the DKIM key\" "
                        "(generate one there, or with manage.py dkim generate), "
                        "or with manage.py dkim set.")]
    return [_check_revoked_key(target.name, key, lookup) if key.state == "revoked"
            else _in_lifecycle(key, _check_dkim_key(target.name, key, lookup))
            for key in expected]


def _check_revoked_key(domain: str, key: DkimExpected, lookup: Session) -> Finding:
    """A revoked key whose revoked form has waited too long (dkim's stall limit).

    Only stalled ones are given: its private key stays on the mail host
    until DNS shows `p=` empty, so the rotation waits for the admin.
    """
    selector = key.selector
    owner = f"{selector}._domainkey.{domain}"
    fix = dkim_records.revoked_record(selector, domain, key.algorithm)
    answer = lookup(owner, "TXT")
    if answer.failed:
        return _unknown("dkim", answer, selector)
    found = [r for r in answer.records if "p=" in r.replace(" ", "")]
    shown = "\n".join(found) or "nothing"
    if len(found) == 1 and not re.sub(r"\s+", "", _tags_or_unparsed(found[0]).get("p", "")):
        return Finding("dkim", selector, OK,
                       f"{owner} shows the revoked form; the key's file is removed at the "
                       "next publish check.", shown)
    return Finding("dkim", selector, WARNING,
                   f"The key rotation is stalled: {owner} was revoked {key.stalled_days} days "
                   "ago and its private key stays on the mail host until DNS shows the "
                   "revoked form (p= empty): publish this record.", shown, "p= (empty)", fix)


def _tags_or_unparsed(text: str) -> dict[str, str]:
    try:
        return parse_tags(text)
    except BadTagList:
        return {"p": "unparsed"}


def _in_lifecycle(key: DkimExpected, finding: Finding) -> Finding:
    """What the key's record in DNS means for its state.

    A pending key is not expected to be there yet: a warning carrying the
    record to publish, not an error. An active key must be there (an error
    as is). A retiring key signed mail that is still being verified: its
    record gone early is an error that says so.
    """
    if finding.verdict != ERROR:
        return finding
    if key.state == "pending" and key.stalled_days:
        return replace(finding, reason=(
            f"The key rotation is stalled: this new key has waited {key.stalled_days} days "
            f"for its record; it signs only once that is published: publish this record. "
            f"{finding.reason}"))
    if key.state == "pending":
        return replace(finding, verdict=WARNING,
                       reason=f"A new key, not published yet: publish this record. "
                              f"{finding.reason}")
    if key.state == "retiring":
        return replace(finding, reason=f"A retiring key's record went early: mail it signed "
                                       f"can no longer be verified. {finding.reason}")
    return finding


def _check_dkim_key(domain: str, key: DkimExpected, lookup: Session) -> Finding:
    selector = key.selector
    owner = f"{selector}._domainkey.{domain}"
    fix = dkim_records.txt_record(selector, domain, key.algorithm, key.public_key)
    wanted = f"p={key.public_key[:24]}… ({key.algorithm})"
    answer = lookup(owner, "TXT")
    if answer.failed:
        return _unknown("dkim", answer, selector)
    found = [r for r in answer.records if "p=" in r.replace(" ", "")]
    if not found:
        return Finding("dkim", selector, ERROR,
                       f"No DKIM record at {owner}: receivers cannot verify signatures.",
                       "nothing", wanted, fix)
    if len(found) > 1:
        return Finding("dkim", selector, ERROR, f"{len(found)} DKIM records at {owner}.",
                       "\n".join(found), wanted, fix)
    text = found[0]
    try:
        tags = parse_tags(text)
    except BadTagList as error:
        return Finding("dkim", selector, ERROR, f"The DKIM record does not parse: {error}.",
                       text, wanted, fix)
    algorithm = tags.get("k", "rsa").lower()
    published = re.sub(r"\s+", "", tags.get("p", ""))
    if tags.get("v", "DKIM1") != "DKIM1":
        return Finding("dkim", selector, ERROR, "The DKIM record's v= is not DKIM1.", text,
                       wanted, fix)
    if not published:
        return Finding("dkim", selector, ERROR, "The DKIM key is revoked (empty p=).", text,
                       wanted, fix)
    try:
        bits = dkim_records.key_bits(published, algorithm)
    except dkim_records.BadKey as error:
        return Finding("dkim", selector, ERROR, f"The published key does not parse: {error}.",
                       text, wanted, fix)
    observed = f"{algorithm}, {bits} bits, p={published[:24]}…"
    if published != key.public_key or algorithm != key.algorithm:
        return Finding("dkim", selector, ERROR,
                       f"The key at {owner} is not the one this host signs with.",
                       observed, wanted, fix)
    if algorithm == "rsa" and bits < dkim_records.RSA_RECOMMENDED_BITS:
        return Finding("dkim", selector, WARNING,
                       f"The RSA key has {bits} bits; use at least "
                       f"{dkim_records.RSA_RECOMMENDED_BITS}.", observed,
                       f"{dkim_records.RSA_RECOMMENDED_BITS} bits")
    if "y" in tags.get("t", "").split(":"):
        return Finding("dkim", selector, WARNING,
                       "The record is in test mode (t=y): receivers may ignore it.", observed)
    return Finding("dkim", selector, OK, f"{owner} publishes this host's key.", observed)


# ---------------------------------------------------------------- DMARC


def check_dmarc(target: Target, identity: Identity, lookup: Session) -> list[Finding]:
    domain = target.name
    owner = f"_dmarc.{domain}"
    suggestion = DMARC_SUGGESTION.format(domain=domain)
    answer = lookup(owner, "TXT")
    if answer.failed:
        return [_unknown("dmarc", answer)]
    records = [r for r in answer.records if r.replace(" ", "").lower().startswith("v=dmarc1")]
    if not records:
        return [Finding("dmarc", "", ERROR, f"No DMARC record at {owner}.", "nothing",
                        suggestion, _txt(owner, suggestion))]
    if len(records) > 1:
        return [Finding("dmarc", "", ERROR,
                        f"{len(records)} DMARC records: receivers ignore them all.",
                        "\n".join(records), suggestion, _txt(owner, suggestion))]
    text = records[0]
    try:
        tags = parse_tags(text)
    except BadTagList as error:
        return [Finding("dmarc", "", ERROR, f"The DMARC record does not parse: {error}.",
                        text, suggestion, _txt(owner, suggestion))]
    errors = _dmarc_tag_errors(tags)
    if errors:
        return [Finding("dmarc", "", ERROR, _sentence(errors), text, suggestion,
                        _txt(owner, suggestion))]
    warnings: list[str] = []
    records_to_publish: list[str] = []
    unknown: list[str] = []
    if tags["p"].lower() == "none":
        warnings.append("p=none only monitors; move to quarantine or reject when reports "
                        "look clean")
    rua = [u.strip() for u in tags.get("rua", "").split(",") if u.strip()]
    if not rua:
        warnings.append("no rua: nobody receives the aggregate reports")
    for uri in rua:
        report_domain = uri[len("mailto:"):].split("!")[0].rpartition("@")[2].lower()
        if not report_domain or _same_organisation(domain, report_domain):
            continue
        authorisation = f"{domain}._report._dmarc.{report_domain}"
        check = lookup(authorisation, "TXT")
        if check.failed:
            unknown.append(check.why())
        elif not any(r.replace(" ", "").lower().startswith("v=dmarc1") for r in check.records):
            warnings.append(f"reports to {report_domain} are not authorised by "
                            f"{authorisation}, so receivers will not send them")
            records_to_publish.append(
                _txt(authorisation, "v=DMARC1") + f"  ; published by {report_domain}'s admin")
    if warnings:
        return [Finding("dmarc", "", WARNING, _sentence(warnings), text, "",
                        "\n".join(records_to_publish))]
    if unknown:
        return [Finding("dmarc", "", UNKNOWN, _sentence(unknown), text)]
    return [Finding("dmarc", "", OK, f"DMARC policy {tags['p'].lower()} with reports.", text)]


def _dmarc_tag_errors(tags: dict[str, str]) -> list[str]:
    errors = []
    policy = tags.get("p", "").lower()
    if not policy:
        errors.append("the record has no p= policy")
    elif policy not in DMARC_POLICIES:
        errors.append(f"p={tags['p']} is not none, quarantine or reject")
    if "sp" in tags and tags["sp"].lower() not in DMARC_POLICIES:
        errors.append(f"sp={tags['sp']} is not none, quarantine or reject")
    for name in ("adkim", "aspf"):
        if name in tags and tags[name].lower() not in {"r", "s"}:
            errors.append(f"{name}={tags[name]} is not r or s")
    if "pct" in tags and not (tags["pct"].isdigit() and 0 <= int(tags["pct"]) <= 100):
        errors.append(f"pct={tags['pct']} is not 0 to 100")
    if "ri" in tags and not tags["ri"].isdigit():
        errors.append(f"ri={tags['ri']} is not a number of seconds")
    for name in ("rua", "ruf"):
        for uri in (u.strip() for u in tags.get(name, "").split(",") if u.strip()):
            if not re.fullmatch(r"mailto:[^@\s]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+(![0-9]+[kmgt]?)?",
                                uri, re.I):
                errors.append(f"{name} address {uri} is not a mailto: address")
    return errors


def _same_organisation(domain: str, other: str) -> bool:
    # Without the public suffix list, "same organisation" is the domain, a
    # subdomain of it, or a parent of it: enough for the domains we host.
    return other == domain or other.endswith("." + domain) or domain.endswith("." + other)


# ---------------------------------------------------------------- MTA-STS and TLS-RPT


def _one_policy_record(check: str, owner: str, prefix: str, suggestion: str, absent: str,
                       lookup: Session) -> Finding | str:
    """The one `prefix` TXT record at `owner`, or the Finding when there is not exactly one."""
    answer = lookup(owner, "TXT")
    if answer.failed:
        return _unknown(check, answer)
    records = [r for r in answer.records if r.lower().startswith(prefix.lower())]
    if not records:
        return Finding(check, "", WARNING, absent, "nothing", suggestion, _txt(owner, suggestion))
    if len(records) > 1:
        return Finding(check, "", ERROR, f"{len(records)} {prefix} records; publish one.",
                       "\n".join(records), suggestion, _txt(owner, suggestion))
    return records[0]


def _policy_tags(record: str) -> dict[str, str]:
    try:
        return parse_tags(record)
    except BadTagList:
        return {}


def check_mta_sts(target: Target, identity: Identity, lookup: Session) -> list[Finding]:
    owner = f"_mta-sts.{target.name}"
    suggestion = "v=STSv1; id=20260101000000"
    record = _one_policy_record(
        "mta-sts", owner, "v=STSv1", suggestion,
        "No MTA-STS record: senders cannot insist on TLS. It also needs a policy at "
        f"https://mta-sts.{target.name}/.well-known/mta-sts.txt.", lookup)
    if isinstance(record, Finding):
        return [record]
    tags = _policy_tags(record)
    if tags.get("v") != "STSv1" or not MTA_STS_ID.fullmatch(tags.get("id", "")):
        return [Finding("mta-sts", "", ERROR,
                        "The MTA-STS record needs v=STSv1 and an id of 1 to 32 letters "
                        "and digits.", record, suggestion, _txt(owner, suggestion))]
    return [Finding("mta-sts", "", OK, "MTA-STS is announced.", record)]


def check_tls_rpt(target: Target, identity: Identity, lookup: Session) -> list[Finding]:
    owner = f"_smtp._tls.{target.name}"
    suggestion = f"v=TLSRPTv1; rua=mailto:postmaster@{target.name}"
    record = _one_policy_record(
        "tls-rpt", owner, "v=TLSRPTv1", suggestion,
        "No TLS-RPT record: nobody hears about failed TLS deliveries.", lookup)
    if isinstance(record, Finding):
        return [record]
    tags = _policy_tags(record)
    uris = [u.strip() for u in tags.get("rua", "").split(",") if u.strip()]
    if tags.get("v") != "TLSRPTv1" or not uris or not all(
            re.fullmatch(r"(mailto:[^@\s]+@[^@\s]+|https://\S+)", u, re.I) for u in uris):
        return [Finding("tls-rpt", "", ERROR,
                        "The TLS-RPT record needs v=TLSRPTv1 and rua= mailto: or https: "
                        "addresses.", record, suggestion, _txt(owner, suggestion))]
    return [Finding("tls-rpt", "", OK, "TLS failure reports go to " + ", ".join(uris) + ".",
                    record)]


# ---------------------------------------------------------------- block lists


def check_dnsbl(target: Target, identity: Identity, lookup: Session) -> list[Finding]:
    findings = []
    for address in identity.addresses:
        ip = ipaddress.ip_address(address)
        if ip.version == 4:
            reversed_ip = ".".join(reversed(address.split(".")))
        else:
            reversed_ip = ".".join(reversed(ip.exploded.replace(":", "")))
        for zone in identity.ip_zones:
            findings.append(_listing("dnsbl", f"{address} {zone}", address,
                                     f"{reversed_ip}.{zone}", zone, lookup))
    return findings


def check_dbl(target: Target, identity: Identity, lookup: Session) -> list[Finding]:
    return [_listing("dbl", zone, target.name, f"{target.name}.{zone}", zone, lookup)
            for zone in identity.domain_zones]


def _listing(check: str, subject: str, what: str, name: str, zone: str,
             lookup: Session) -> Finding:
    answer = lookup(name, "A")
    if answer.failed:
        return Finding(check, subject, UNKNOWN, f"{zone} did not answer for {what} "
                                                f"({answer.status}); listing unknown.")
    if answer.void:
        return Finding(check, subject, OK, f"{what} is not listed on {zone}.")
    codes = [ipaddress.ip_address(a) for a in answer.records]
    observed = ", ".join(answer.records)
    if all(code in BLOCKLIST_ERRORS for code in codes):
        # 127.255.255.x: the list refuses the query (public resolver, rate
        # limit, bad query); it says nothing about the address.
        return Finding(check, subject, UNKNOWN,
                       f"{zone} refused to answer ({observed}): queries through a public or "
                       "busy resolver are refused; use a resolver of your own.", observed)
    listed = [c for c in codes if c in LOOPBACK and c not in BLOCKLIST_ERRORS]
    if not listed:
        return Finding(check, subject, UNKNOWN,
                       f"{zone} gave an answer that is not a listing code ({observed}).",
                       observed)
    explanation = lookup(name, "TXT")
    detail = " ".join(explanation.records)[:300]
    return Finding(check, subject, ERROR, f"{what} is listed on {zone} ({observed}).",
                   observed + (f"\n{detail}" if detail else ""))


# ---------------------------------------------------------------- addresses


def check_required_address(target: Target, identity: Identity,
                           lookup: Session) -> list[Finding]:
    findings = []
    for local, verdict in (("postmaster", ERROR), ("abuse", WARNING)):
        address = f"{local}@{target.name}"
        how = target.required.get(local, "")
        if how:
            findings.append(Finding("required-address", local, OK,
                                    f"{address} is received ({how}).", how))
        else:
            findings.append(Finding(
                "required-address", local, verdict,
                f"Nothing receives {address} (RFC 2142 asks for it): add a mailbox or "
                "an alias.", "nothing", "a mailbox, alias or catch-all"))
    return findings


CHECKS: list[Callable[[Target, Identity, Session], list[Finding]]] = [
    check_mx, check_host_address, check_ptr, check_spf, check_dkim, check_dmarc,
    check_mta_sts, check_tls_rpt, check_dnsbl, check_dbl, check_required_address,
]
