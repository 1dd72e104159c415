"""How fast the DNS health checks run at hosting scale, next to checkdmarc.

Run from the project root, as root:

    .venv/bin/python benchmarks/dnscheck.py [--domains 1000] [--runs 3]
                                            [--skip-checkdmarc] [--rtt MS]
                                            [--profile] [--json]

It writes the zones of N customer domains (four in five healthy, every fifth
broken in one of the ways the checks must notice), of the mail host, its
reverse zones, a DNS block list and a few shared SPF/DMARC providers, and
serves them all with Knot DNS on loopback. Then, alternately, it times the
panel's engine (`dnscheck.checks.check_many`, a fresh Resolver each run so
nothing is cached between runs) and checkdmarc (`check_domains`, its caches
cleared each run) on the same domains against the same server, counting the
DNS queries each sends in Knot's own statistics.

The whole run happens in a private network namespace that has only a loopback
interface (the script re-executes itself under `unshare --net`), so neither
tool can send anything off this machine whatever it tries. checkdmarc's
MTA-STS policy download (HTTPS) is replaced by a canned policy, and its
STARTTLS/TLS probes are off (`check_mx_tls=False`, its default).

On loopback a query costs no waiting, so the run measures CPU per query and
queries per domain; `--rtt MS` puts a proxy that delays every message in
front of Knot, to show what a resolver's cache misses do to each tool.

Goal: all domains checked in under 20 s, and much faster than checkdmarc.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import knot_conf

PROJECT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 20.0
# Marks the re-executed process that already runs in its own network namespace.
NETNS_ENV = "MAILADMIN_BENCH_NETNS"

DNS_TIMEOUT = 2.0
DNS_TRIES = 2  # ours: tries; checkdmarc: retries = tries - 1

# The mail host as the checks are told about it (documentation addresses).
MAIL_HOST = "mx.mailhost.test"
IPV4 = "192.0.2.25"
IPV6 = "2001:db8::25"
IP_ZONE = "zen.dnsbl.test"
DOMAIN_ZONE = "dbl.dnsbl.test"
SELECTOR = "mail"
REPORTS_DOMAIN = "dmarc-reports.test"
SOA_SERIAL = 2025010101

# checkdmarc fetches https://mta-sts.<domain>/.well-known/mta-sts.txt; it gets
# this instead (the panel only checks the TXT record, so neither tool fetches).
CANNED_MTA_STS_POLICY = f"version: STSv1\nmode: enforce\nmx: {MAIL_HOST}\nmax_age: 86400\n"

VERDICTS = ("ok", "unknown", "warning", "error")


# ---------------------------------------------------------------- fixture


@dataclass(frozen=True)
class Case:
    """One way a domain's DNS can be set up, and what the checks must say about it."""

    kind: str
    check: str = ""  # the check that must notice; "" for a healthy domain
    verdict: str = "ok"


HEALTHY = Case("healthy")
# Every fifth domain is broken, cycling through these.
BROKEN = (
    Case("no-mx", "mx", "error"),
    Case("mx-cname", "mx", "error"),
    Case("mx-foreign", "mx", "error"),
    Case("spf-missing", "spf", "error"),
    Case("spf-two", "spf", "error"),
    Case("spf-syntax", "spf", "error"),
    Case("spf-11-lookups", "spf", "error"),
    Case("spf-void", "spf", "error"),
    Case("spf-loop", "spf", "error"),
    Case("spf-plus-all", "spf", "error"),
    Case("spf-not-ours", "spf", "error"),
    Case("spf-neutral-all", "spf", "warning"),
    Case("dkim-missing", "dkim", "error"),
    Case("dkim-mismatch", "dkim", "error"),
    Case("dkim-garbage", "dkim", "error"),
    Case("dkim-short", "dkim", "warning"),
    Case("dkim-unconfigured", "dkim", "unknown"),
    Case("dmarc-missing", "dmarc", "error"),
    Case("dmarc-two", "dmarc", "error"),
    Case("dmarc-bad-tag", "dmarc", "error"),
    Case("dmarc-p-none", "dmarc", "warning"),
    Case("dmarc-no-rua", "dmarc", "warning"),
    Case("dmarc-rua-unauthorised", "dmarc", "warning"),
    Case("mta-sts-missing", "mta-sts", "warning"),
    Case("mta-sts-invalid", "mta-sts", "error"),
    Case("tls-rpt-missing", "tls-rpt", "warning"),
    Case("tls-rpt-invalid", "tls-rpt", "error"),
    Case("dbl-listed", "dbl", "error"),
    Case("dbl-refused", "dbl", "unknown"),
    Case("no-postmaster", "required-address", "error"),
    Case("no-abuse", "required-address", "warning"),
    Case("not-served", "mx", "unknown"),
)


@dataclass
class Keys:
    """One 2048-bit key every domain should publish, and a 1024-bit one for the
    short-key and mismatch cases (base64 DER, as after p=)."""

    good: str
    short: str

    @classmethod
    def generate(cls) -> Keys:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        def public(bits: int) -> str:
            key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
            der = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            return base64.b64encode(der).decode()

        return cls(good=public(2048), short=public(1024))


@dataclass
class Domain:
    name: str
    case: Case
    lines: list[str]  # zone-file lines relative to the domain ("" when not served)
    dkim_selector: str = SELECTOR
    dkim_key: str = ""
    required: dict[str, str] = field(default_factory=dict)
    rua_authorised: bool = False  # the reports domain authorises this one
    dbl_answer: str = ""  # what dbl.dnsbl.test answers for it

    @property
    def served(self) -> bool:
        return bool(self.lines)


def txt(value: str) -> str:
    """A TXT rdata: quoted, split into strings of at most 255 bytes."""
    chunks = [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


def domain_name(i: int, count: int) -> str:
    return f"d{i:0{max(4, len(str(count)))}d}.test"


def build_domain(i: int, count: int, keys: Keys) -> Domain:
    name = domain_name(i, count)
    case = BROKEN[(i // 5) % len(BROKEN)] if i % 5 == 0 else HEALTHY
    kind = case.kind
    dom = Domain(name=name, case=case, lines=[], dkim_key=keys.good,
                 required={"postmaster": ("mailbox", "alias", "catch-all")[i % 3],
                           "abuse": "alias"})
    if kind == "not-served":
        return dom

    lines = [
        f"@ SOA ns1.dnshost.test. hostmaster.{name}. {SOA_SERIAL} 3600 600 1209600 300",
        "@ NS ns1.dnshost.test.",
        "@ NS ns2.dnshost.test.",
        f"@ A 198.51.100.{80 + i % 10}",
        "www CNAME @",
        f"mta-sts A 198.51.100.{80 + i % 10}",
    ]
    # MX
    if kind == "mx-cname":
        lines += ["@ MX 10 mail", f"mail CNAME {MAIL_HOST}."]
    elif kind == "mx-foreign":
        lines.append("@ MX 10 mx.elsewhere.test.")
    elif kind != "no-mx":
        lines.append(f"@ MX 10 {MAIL_HOST}.")

    # SPF: one or two shared includes plus the domain's own web server.
    own = f"ip4:198.51.100.{80 + i % 10}"
    spf = {
        "spf-two": None,
        "spf-missing": None,
        "spf-syntax": f"v=spf1 include:_spf.mailhost.test ipv4:{own[4:]} -all",
        "spf-11-lookups": "v=spf1 a mx include:_spf.mailhost.test include:_big.provider.test -all",
        "spf-void": (f"v=spf1 a:gone1.{name} a:gone2.{name} a:gone3.{name} "
                     "include:_spf.mailhost.test -all"),
        "spf-loop": "v=spf1 include:_spf.mailhost.test include:_loop1.provider.test -all",
        "spf-plus-all": f"v=spf1 include:_spf.mailhost.test {own} +all",
        "spf-not-ours": f"v=spf1 {own} ip4:203.0.113.9 -all",
        "spf-neutral-all": f"v=spf1 include:_spf.mailhost.test {own} ?all",
    }.get(kind, f"v=spf1 include:_spf.mailhost.test {own} -all" if i % 2 else
          f"v=spf1 mx include:_spf.mailhost.test include:_spf.provider.test {own} ~all")
    if spf:
        lines.append(f"@ TXT {txt(spf)}")
    if kind == "spf-two":
        lines += [f"@ TXT {txt('v=spf1 include:_spf.mailhost.test -all')}",
                  f"@ TXT {txt(f'v=spf1 {own} -all')}"]
    if i % 3 == 0:  # the usual noise next to the SPF record
        lines.append(f"@ TXT {txt(f'site-verification=bench{i:08x}')}")

    # DKIM
    published = {"dkim-mismatch": keys.short, "dkim-short": keys.short,
                 "dkim-garbage": "MIIBIjANBgkqhkiG9w0B!!"}.get(kind, keys.good)
    if kind == "dkim-short":
        dom.dkim_key = keys.short
    if kind == "dkim-unconfigured":
        dom.dkim_selector, dom.dkim_key = "", ""
    if kind != "dkim-missing":
        lines.append(f"{SELECTOR}._domainkey TXT {txt(f'v=DKIM1; k=rsa; p={published}')}")

    # DMARC: reports to the domain itself, or (every fourth) to a reporting
    # service that authorises it.
    external = i % 4 == 1 or kind == "dmarc-rua-unauthorised"
    rua = f"mailto:reports@{REPORTS_DOMAIN}" if external else f"mailto:dmarc@{name}"
    dom.rua_authorised = external and kind != "dmarc-rua-unauthorised"
    dmarc = {
        "dmarc-missing": None,
        "dmarc-bad-tag": f"v=DMARC1; p=block; rua={rua}",
        "dmarc-p-none": f"v=DMARC1; p=none; rua={rua}",
        "dmarc-no-rua": "v=DMARC1; p=reject; adkim=s",
    }.get(kind, f"v=DMARC1; p={'reject' if i % 2 else 'quarantine'}; rua={rua}; adkim=r")
    if dmarc:
        lines.append(f"_dmarc TXT {txt(dmarc)}")
    if kind == "dmarc-two":
        lines.append(f"_dmarc TXT {txt('v=DMARC1; p=none')}")

    # MTA-STS, TLS-RPT
    sts = {"mta-sts-missing": None, "mta-sts-invalid": "v=STSv1; id=not valid!"}.get(
        kind, f"v=STSv1; id={SOA_SERIAL}T{i:06d}")
    if sts:
        lines.append(f"_mta-sts TXT {txt(sts)}")
    rpt = {"tls-rpt-missing": None, "tls-rpt-invalid": "v=TLSRPTv1; rua=ftp://reports.test"}.get(
        kind, f"v=TLSRPTv1; rua=mailto:tlsrpt@{name}")
    if rpt:
        lines.append(f"_smtp._tls TXT {txt(rpt)}")

    dom.dbl_answer = {"dbl-listed": "127.0.1.2", "dbl-refused": "127.255.255.254"}.get(kind, "")
    if kind == "no-postmaster":
        dom.required["postmaster"] = ""
    if kind == "no-abuse":
        dom.required["abuse"] = ""
    dom.lines = lines
    return dom


def shared_zones(domains: list[Domain]) -> dict[str, list[str]]:
    """The zones every customer domain leans on: mail host, reverse, providers, block lists."""
    import dns.reversename

    def soa(zone: str) -> list[str]:
        return [f"@ SOA ns1.dnshost.test. hostmaster.{zone}. {SOA_SERIAL} 3600 600 1209600 300",
                "@ NS ns1.dnshost.test.", "@ NS ns2.dnshost.test."]

    v4_ptr = dns.reversename.from_address(IPV4)
    v6_ptr = dns.reversename.from_address(IPV6)
    v4_zone = v4_ptr.parent().to_text(omit_final_dot=True)
    v6_zone = "8.b.d.0.1.0.0.2.ip6.arpa"
    records: dict[str, list[str]] = {
        "mailhost.test": [
            f"mx A {IPV4}", f"mx AAAA {IPV6}",
            f"_spf TXT {txt(f'v=spf1 ip4:{IPV4} ip6:{IPV6} -all')}",
        ],
        "dnshost.test": ["ns1 A 198.51.100.53", "ns2 A 198.51.100.54"],
        "elsewhere.test": ["mx A 203.0.113.5"],
        "provider.test": [
            f"_spf TXT {txt('v=spf1 include:_nb1.provider.test include:_nb2.provider.test ~all')}",
            f"_nb1 TXT {txt('v=spf1 ip4:203.0.113.0/26 ip4:203.0.113.64/26 ~all')}",
            f"_nb2 TXT {txt('v=spf1 ip4:203.0.113.128/25 ip6:2001:db8:ff::/48 ~all')}",
            # eight a: lookups: with the domain's a, mx and include, 12 in all
            "_big TXT " + txt("v=spf1 " + " ".join(f"a:h{n}.provider.test" for n in range(8))
                              + " -all"),
            *(f"h{n} A 203.0.113.{10 + n}" for n in range(8)),
            f"_loop1 TXT {txt('v=spf1 include:_loop2.provider.test -all')}",
            f"_loop2 TXT {txt('v=spf1 include:_loop1.provider.test -all')}",
        ],
        REPORTS_DOMAIN: [
            f"@ MX 10 mx.{REPORTS_DOMAIN}.", "mx A 203.0.113.25",
            *(f"{d.name}._report._dmarc TXT {txt('v=DMARC1')}"
              for d in domains if d.rua_authorised),
        ],
        "dnsbl.test": [
            # RFC 5782 test entries, then the listed customer domains
            f"2.0.0.127.{IP_ZONE.removesuffix('.dnsbl.test')} A 127.0.0.2",
            f"test.{DOMAIN_ZONE.removesuffix('.dnsbl.test')} A 127.0.1.2",
            *(f"{d.name}.{DOMAIN_ZONE.removesuffix('.dnsbl.test')} A {d.dbl_answer}"
              for d in domains if d.dbl_answer),
        ],
        v4_zone: [f"{v4_ptr.relativize(v4_ptr.parent())} PTR {MAIL_HOST}."],
        v6_zone: [f"{v6_ptr.to_text().removesuffix('.' + v6_zone + '.')} PTR {MAIL_HOST}."],
    }
    return {zone: [*soa(zone), *lines] for zone, lines in records.items()}


def build_fixture(count: int, keys: Keys) -> tuple[list[Domain], dict[str, list[str]]]:
    domains = [build_domain(i, count, keys) for i in range(1, count + 1)]
    zones = shared_zones(domains)
    zones.update({d.name: d.lines for d in domains if d.served})
    return domains, zones


# ---------------------------------------------------------------- knot


class Knot:
    """knotd serving `zones` on address@port, with per-protocol query statistics."""

    def __init__(self, workdir: Path, zones: dict[str, list[str]], address: str,
                 port: int) -> None:
        self.dir = workdir
        self.zones = zones
        self.address, self.port = address, port
        self.conf = workdir / "knot.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    def write(self) -> None:
        zone_dir = self.dir / "zones"
        zone_dir.mkdir(parents=True)
        (self.dir / "db").mkdir()
        for zone, lines in self.zones.items():
            body = "\n".join(lines)
            (zone_dir / f"{zone}.zone").write_text(f"$ORIGIN {zone}.\n$TTL 3600\n{body}\n")
        self.conf.write_text(knot_conf(self.dir, f"{self.address}@{self.port}", zone_dir,
                                       self.zones))

    def knotc(self, *args: str) -> str:
        return subprocess.run(["knotc", "-c", str(self.conf), *args], check=True,
                              capture_output=True, text=True, timeout=30).stdout

    def start(self) -> None:
        self.write()
        log = (self.dir / "knotd.log").open("wb")
        self.proc = subprocess.Popen(["knotd", "-c", str(self.conf)], stdout=log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"knotd exited: {(self.dir / 'knotd.log').read_text()}")
            if (self.dir / "knot.sock").exists():
                status = subprocess.run(["knotc", "-c", str(self.conf), "zone-status"],
                                        capture_output=True, text=True).stdout
                if status.count(f"serial: {SOA_SERIAL}") == len(self.zones):
                    return
            time.sleep(0.1)
        raise RuntimeError("knotd did not load its zones within 60 s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def queries(self) -> tuple[Counter[str], Counter[str]]:
        """Queries received so far, by protocol (udp4, tcp4, ...) and by type."""
        protocols: Counter[str] = Counter()
        types: Counter[str] = Counter()
        for line in self.knotc("stats", "mod-stats").splitlines():
            # mod-stats.request-protocol[udp4] = 123
            key, _, value = line.partition(" = ")
            if "[" not in key:
                continue
            item = key[key.index("[") + 1:-1]
            if key.startswith("mod-stats.request-protocol["):
                protocols[item] = int(value)
            elif key.startswith("mod-stats.query-type["):
                types[item] = int(value)
        return protocols, types

    def sanity_check(self, domains: list[Domain]) -> None:
        """A few answers via kdig, so a broken fixture fails loudly and early."""
        first = next(d for d in domains if d.case is HEALTHY)
        expected = {
            (first.name, "MX"): f"10 {MAIL_HOST}.",
            (MAIL_HOST, "A"): IPV4,
            (f"{IPV4.split('.')[3]}.2.0.192.in-addr.arpa", "PTR"): f"{MAIL_HOST}.",
        }
        for (qname, qtype), answer in expected.items():
            out = subprocess.run(
                ["kdig", f"@{self.address}", "-p", str(self.port), "+short", qname, qtype],
                capture_output=True, text=True, timeout=10).stdout.strip()
            if out != answer:
                raise RuntimeError(f"kdig {qname} {qtype}: {out!r}, expected {answer!r}")
        key = subprocess.run(
            ["kdig", f"@{self.address}", "-p", str(self.port), "+short",
             f"{SELECTOR}._domainkey.{first.name}", "TXT"],
            capture_output=True, text=True, timeout=10).stdout
        if first.dkim_key[-40:] not in key.replace('" "', ""):
            raise RuntimeError(f"DKIM record of {first.name} not served: {key!r}")


# ---------------------------------------------------------------- runs


@dataclass
class Run:
    tool: str
    run: int
    seconds: float
    queries: int  # as counted by Knot
    by_protocol: dict[str, int]
    by_type: dict[str, int]
    client_queries: int | None = None  # as counted by the tool itself

    @property
    def per_second(self) -> float:
        return self.queries / self.seconds if self.seconds else 0.0


@contextmanager
def counted(knot: Knot) -> Iterator[dict[str, Any]]:
    out: dict[str, Any] = {}
    protocols, types = knot.queries()
    started = time.perf_counter()
    yield out
    out["seconds"] = time.perf_counter() - started
    protocols_after, types_after = knot.queries()
    out["queries"] = sum((protocols_after - protocols).values())
    out["by_protocol"] = dict(protocols_after - protocols)
    out["by_type"] = dict(types_after - types)


def targets_for(domains: list[Domain]) -> list[Any]:
    from dnscheck.findings import DkimExpected, Target

    return [Target(name=d.name,
                   dkim_keys=((DkimExpected(d.dkim_selector, d.dkim_key),)
                              if d.dkim_selector and d.dkim_key else ()),
                   required=dict(d.required)) for d in domains]


def identity() -> Any:
    from dnscheck.findings import Identity

    return Identity(hosts=(MAIL_HOST,), ipv4=(IPV4,), ipv6=(IPV6,),
                    ip_zones=(IP_ZONE,), domain_zones=(DOMAIN_ZONE,))


def run_ours(knot: Knot, server: tuple[str, int], targets: list[Any], run: int,
             concurrency: int | None) -> tuple[Run, dict[str, list[Any]]]:
    from core.resolver import Resolver
    from dnscheck.checks import check_many

    resolver = Resolver(nameservers=[f"{server[0]}@{server[1]}"], timeout=DNS_TIMEOUT,
                        tries=DNS_TRIES)
    with counted(knot) as c:
        results = check_many(targets, identity(), resolver=resolver, concurrency=concurrency)
    return Run("mailadmin", run, c["seconds"], c["queries"], c["by_protocol"], c["by_type"],
               client_queries=resolver.queries), results


def prepare_checkdmarc() -> None:
    """Quiet logs, and the MTA-STS policy from memory instead of over HTTPS."""
    import checkdmarc.mta_sts

    logging.getLogger("checkdmarc").setLevel(logging.CRITICAL)

    def canned_policy(domain: str, **_: Any) -> dict[str, Any]:
        return {"policy": CANNED_MTA_STS_POLICY, "warnings": []}

    checkdmarc.mta_sts.download_mta_sts_policy = canned_policy  # type: ignore[assignment]


def clear_checkdmarc_caches() -> None:
    """checkdmarc keeps module-level answer caches; a fresh run starts without them."""
    from expiringdict import ExpiringDict

    for module in list(sys.modules.values()):
        if module is None or not module.__name__.startswith("checkdmarc"):
            continue
        for value in vars(module).values():
            if isinstance(value, ExpiringDict):
                value.clear()


def run_checkdmarc(knot: Knot, server: tuple[str, int], names: list[str],
                   run: int) -> tuple[Run, list[dict[str, Any]]]:
    import checkdmarc
    import dns.nameserver

    clear_checkdmarc_caches()
    # A Nameserver object carries the port, which a plain address string cannot.
    nameservers = [dns.nameserver.Do53Nameserver(*server)]
    with counted(knot) as c:
        results = checkdmarc.check_domains(
            names, nameservers=nameservers, timeout=DNS_TIMEOUT, retries=DNS_TRIES - 1,
            check_mx_tls=False)
    if isinstance(results, dict):
        results = [results]
    return (Run("checkdmarc", run, c["seconds"], c["queries"], c["by_protocol"], c["by_type"]),
            list(results))


# ---------------------------------------------------------------- results


def verdict_counts(results: dict[str, list[Any]]) -> dict[str, dict[str, int]]:
    """check name -> verdict -> number of findings, plus each domain's worst verdict."""
    table: dict[str, Counter[str]] = {}
    worst: Counter[str] = Counter()
    for findings in results.values():
        for f in findings:
            table.setdefault(f.check, Counter())[VERDICTS[int(f.verdict)]] += 1
        worst[VERDICTS[max((int(f.verdict) for f in findings), default=0)]] += 1
    out = {check: dict(counts) for check, counts in sorted(table.items())}
    out["(worst per domain)"] = dict(worst)
    return out


def agreement(domains: list[Domain], results: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Per fixture case: how many of its domains got the verdict they must get."""
    by_kind: dict[str, dict[str, Any]] = {}
    for d in domains:
        row = by_kind.setdefault(d.case.kind, {"case": d.case.kind, "check": d.case.check,
                                               "expected": d.case.verdict, "domains": 0,
                                               "agree": 0, "example": ""})
        row["domains"] += 1
        findings = results.get(d.name, [])
        if d.case is HEALTHY:
            bad = [f for f in findings if int(f.verdict) != 0]
            ok = bool(findings) and not bad
            detail = "; ".join(f"{f.check}[{f.subject}] {VERDICTS[int(f.verdict)]}: {f.reason}"
                               for f in bad[:3]) or ("no findings" if not findings else "")
        else:
            mine = [f for f in findings if f.check == d.case.check]
            ok = any(VERDICTS[int(f.verdict)] == d.case.verdict for f in mine)
            detail = "; ".join(f"[{f.subject}] {VERDICTS[int(f.verdict)]}: {f.reason}"
                               for f in mine[:3]) or f"no {d.case.check} finding"
        if ok:
            row["agree"] += 1
        elif not row["example"]:
            row["example"] = f"{d.name}: {detail}"
    return list(by_kind.values())


def checkdmarc_summary(results: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per section of checkdmarc's result: domains with an error, with warnings, clean."""
    out: dict[str, Counter[str]] = {}
    for r in results:
        # (bimi left out: without a BIMI record checkdmarc calls it an error)
        for section in ("soa", "ns", "mx", "spf", "dmarc", "mta_sts", "smtp_tls_reporting"):
            value = r.get(section)
            if not isinstance(value, dict):
                continue
            counts = out.setdefault(section, Counter())
            if "error" in value or value.get("valid") is False:
                counts["error"] += 1
            elif value.get("warnings"):
                counts["warnings"] += 1
            else:
                counts["clean"] += 1
        out.setdefault("dnssec", Counter())["signed" if r.get("dnssec") else "unsigned"] += 1
    return {k: dict(v) for k, v in out.items()}


COVERAGE = {
    "mailadmin": ("MX (target ours, not a CNAME, A/AAAA = our addresses); our host names' "
                  "A/AAAA; PTR + forward confirmation of our addresses; SPF (syntax, 10 "
                  "lookups, 2 voids, loops, all-qualifier, evaluated for each of our "
                  "addresses); DKIM (selector, key match, key size); DMARC (tags, policy, "
                  "rua and external-rua authorisation); MTA-STS and TLS-RPT TXT; DNSBL for "
                  "our addresses; domain block list; postmaster@/abuse@ (no DNS)"),
    "checkdmarc": ("SOA; NS; DNSSEC (DS + DNSKEY) of the domain and of each MX host; MX "
                   "(CNAME target, A/AAAA, TLSA, PTR + forward confirmation of each MX "
                   "address); SPF (syntax, lookups, voids, loops; not evaluated for an "
                   "address); DMARC (tags, external-rua authorisation); MTA-STS TXT (+ "
                   "policy: canned here, not downloaded); TLS-RPT; BIMI TXT. No DKIM, no "
                   "DNSBL, not our own addresses' PTR; no STARTTLS/TLS probes (off)"),
}


def median_min(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def summary(args: argparse.Namespace, domains: list[Domain], zone_count: int,
            ours: list[Run], theirs: list[Run], counts: dict[str, dict[str, int]] | None,
            agree: list[dict[str, Any]] | None,
            cdm: dict[str, dict[str, int]] | None) -> tuple[list[str], dict[str, Any]]:
    broken = sum(1 for d in domains if d.case is not HEALTHY)
    lines = [
        f"fixture: {len(domains)} domains ({broken} broken in {len(BROKEN)} ways), "
        f"{zone_count} zones served by knotd on {args.server}; timeout {DNS_TIMEOUT:g} s, "
        f"{DNS_TRIES} tries",
        "",
        f"{'tool':<12}{'run':>4}{'seconds':>10}{'queries':>10}{'queries/s':>11}"
        f"{'per domain':>12}  protocols",
    ]
    for r in sorted(ours + theirs, key=lambda r: (r.tool != "mailadmin", r.run)):
        extra = "" if r.client_queries is None else f"  (resolver.queries {r.client_queries})"
        protocols = " ".join(f"{k}={v}" for k, v in sorted(r.by_protocol.items()))
        lines.append(f"{r.tool:<12}{r.run:>4}{r.seconds:>10.2f}{r.queries:>10}"
                     f"{r.per_second:>11.0f}{r.queries / len(domains):>12.1f}  "
                     f"{protocols}{extra}")
    for runs in (ours, theirs):
        if runs:
            types = " ".join(f"{t}={n}" for t, n in
                             sorted(runs[-1].by_type.items(), key=lambda item: -item[1]))
            lines.append(f"{runs[-1].tool} query types (run {runs[-1].run}): {types}")
    payload: dict[str, Any] = {
        "arguments": vars(args), "domains": len(domains), "broken": broken,
        "zones": zone_count, "goal_seconds": GOAL_SECONDS,
        "runs": [{**asdict(r), "queries_per_second": r.per_second} for r in ours + theirs],
        "coverage": COVERAGE,
    }
    lines.append("")
    if ours:
        best, med = median_min([r.seconds for r in ours])
        verdict = "ok" if med < GOAL_SECONDS else "MISSED"
        lines.append(f"mailadmin:  min {best:.2f} s, median {med:.2f} s, "
                     f"{statistics.median([r.queries for r in ours]):.0f} queries "
                     f"(goal < {GOAL_SECONDS:.0f} s: {verdict})")
        payload["mailadmin"] = {"min_seconds": best, "median_seconds": med}
    if theirs:
        best_c, med_c = median_min([r.seconds for r in theirs])
        lines.append(f"checkdmarc: min {best_c:.2f} s, median {med_c:.2f} s, "
                     f"{statistics.median([r.queries for r in theirs]):.0f} queries")
        payload["checkdmarc"] = {"min_seconds": best_c, "median_seconds": med_c}
        if ours:
            ratio = med_c / med
            lines.append(f"ratio checkdmarc / mailadmin (medians): {ratio:.1f}x")
            payload["ratio"] = ratio
    if counts is not None:
        lines += ["", f"{'check':<20}" + "".join(f"{v:>9}" for v in VERDICTS)]
        for check, row in counts.items():
            lines.append(f"{check:<20}" + "".join(f"{row.get(v, 0):>9}" for v in VERDICTS))
        payload["verdicts"] = counts
    if agree is not None:
        misses = [a for a in agree if a["agree"] != a["domains"]]
        lines += ["", f"fixture cases: {len(agree) - len(misses)} of {len(agree)} "
                  "detected as expected on every domain"]
        for a in misses:
            lines.append(f"  {a['case']} (want {a['check'] or 'all'} {a['expected']}): "
                         f"{a['agree']}/{a['domains']}; e.g. {a['example']}")
        payload["agreement"] = agree
    if cdm is not None:
        lines += ["", "checkdmarc results (domains per section): " + "; ".join(
            f"{k} " + ", ".join(f"{n} {v}" for n, v in sorted(row.items()))
            for k, row in cdm.items())]
        payload["checkdmarc_sections"] = cdm
    lines += ["", "covered:"] + [f"  {tool}: {text}" for tool, text in COVERAGE.items()]
    payload["summary"] = lines
    return lines, payload


# ---------------------------------------------------------------- latency


def start_delay_proxy(listen: tuple[str, int], upstream: tuple[str, int],
                      rtt: float) -> multiprocessing.Process:
    """A UDP and TCP DNS proxy in its own process that holds every message for rtt/2.

    This kernel has no netem, and on loopback both tools would otherwise see
    no latency at all, which hides the difference between asking in sequence
    and asking in parallel.
    """
    ready = multiprocessing.Event()
    process = multiprocessing.Process(target=delay_proxy, args=(listen, upstream, rtt / 2, ready),
                                      daemon=True)
    process.start()
    if not ready.wait(10):
        process.terminate()
        raise RuntimeError("the delay proxy did not start")
    return process


def delay_proxy(listen: tuple[str, int], upstream: tuple[str, int], delay: float,
                ready: Any) -> None:
    import asyncio

    class Udp(asyncio.DatagramProtocol):
        """Client side; queries go upstream under an id of the proxy's own, since
        two clients may pick the same one."""

        def __init__(self) -> None:
            self.pending: dict[int, tuple[Any, bytes]] = {}
            self.next_id = 0
            self.transport: Any = None
            self.upstream: Any = None

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            if len(data) < 12:
                return
            self.next_id = (self.next_id + 1) % 65536
            self.pending[self.next_id] = (addr, data[:2])
            loop.call_later(delay, self.upstream.sendto,
                            self.next_id.to_bytes(2, "big") + data[2:])

        def answer(self, data: bytes) -> None:
            entry = self.pending.pop(int.from_bytes(data[:2], "big"), None)
            if entry is not None:
                addr, original_id = entry
                loop.call_later(delay, self.transport.sendto, original_id + data[2:], addr)

    class Upstream(asyncio.DatagramProtocol):
        def __init__(self, client: Udp) -> None:
            self.client = client

        def datagram_received(self, data: bytes, addr: Any) -> None:
            if len(data) >= 12:
                self.client.answer(data)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer),
                             return_exceptions=True)

    async def serve() -> None:
        client = Udp()
        await loop.create_datagram_endpoint(lambda: client, local_addr=listen)
        client.upstream, _ = await loop.create_datagram_endpoint(
            lambda: Upstream(client), remote_addr=upstream)
        server = await asyncio.start_server(tcp, *listen)
        ready.set()
        async with server:
            await server.serve_forever()

    loop = asyncio.new_event_loop()
    loop.run_until_complete(serve())


# ---------------------------------------------------------------- profiling


def profile_ours(knot: Knot, server: tuple[str, int], targets: list[Any], top: int) -> str:
    """One extra run, its worker thread under cProfile.

    One worker: with many, each thread's profile also counts the time it
    waits for the GIL, which hides where the CPU goes. On loopback one worker
    is about as fast as many anyway (the run is CPU-bound).
    """
    import cProfile
    import io
    import pstats

    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def boot(frame: Any, event: str, arg: Any) -> None:
        # The first profile event of each new thread swaps this hook for a profiler.
        sys.setprofile(None)
        profiler = cProfile.Profile()
        with lock:
            profiles.append(profiler)
        profiler.enable()

    threading.setprofile(boot)
    try:
        run_ours(knot, server, targets, 0, concurrency=1)
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    out = io.StringIO()
    stats = pstats.Stats(*profiles, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each tool")
    parser.add_argument("--checkdmarc-runs", type=int, default=None,
                        help="timed runs of checkdmarc (default: --runs)")
    parser.add_argument("--skip-checkdmarc", action="store_true")
    parser.add_argument("--skip-ours", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="check_many's thread count (default: its own)")
    parser.add_argument("--profile", action="store_true",
                        help="after the timed runs, profile one more run of ours "
                             "(one worker thread, cProfile)")
    parser.add_argument("--rtt", type=float, default=0.0, metavar="MS",
                        help="send both tools' queries through a proxy that adds this "
                             "round-trip time, as a resolver's cache misses would")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--no-netns", action="store_true",
                        help="run in this network namespace (knotd on a free loopback port) "
                             "instead of a private one that has only loopback")
    args = parser.parse_args(argv)
    if args.domains < len(BROKEN) * 5:
        parser.error(f"need at least {len(BROKEN) * 5} domains to have every broken case")
    if args.checkdmarc_runs is None:
        args.checkdmarc_runs = args.runs
    return args


def reexec_in_netns(argv: list[str]) -> int:
    """Run this script again in a new network namespace whose only interface is lo."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("needs root and unshare(1) for a private network namespace "
              "(or --no-netns)", file=sys.stderr)
        return 2
    env = {**os.environ, NETNS_ENV: "1"}
    # exec all the way down: the benchmark keeps this process id, so a signal
    # sent to it reaches the process that stops knotd.
    command = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
               sys.executable, str(Path(__file__).resolve()), *argv]
    os.execvpe(command[0], command, env)  # noqa: S606 (a fixed argv; no shell input)


def loopback_only() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((address, 0))
        return int(udp.getsockname()[1])


def refuse_remote_connections() -> None:
    """Without the private namespace: HTTP, SMTP and anything else that looks a
    name up or connects goes through these, so refuse all but loopback. (DNS
    queries go to the address this script gives each tool.)"""
    import ipaddress

    real_getaddrinfo = socket.getaddrinfo

    def loopback_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        results = real_getaddrinfo(host, *args, **kwargs) if host in (
            None, "localhost", "127.0.0.1", "::1") else []
        if not results:
            raise OSError(f"benchmark: refusing to resolve or reach {host!r}")
        for *_, sockaddr in results:
            if not ipaddress.ip_address(sockaddr[0]).is_loopback:
                raise OSError(f"benchmark: refusing to reach {host!r}")
        return results

    socket.getaddrinfo = loopback_getaddrinfo


def setup_django(data_dir: Path) -> None:
    os.environ["MAILADMIN_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailadmin.settings")
    if str(PROJECT) not in sys.path:
        sys.path.insert(0, str(PROJECT))
    import django

    django.setup()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not args.no_netns and os.environ.get(NETNS_ENV) != "1":
        return reexec_in_netns(argv)
    if not args.no_netns and not loopback_only():
        log("refusing to run: this network namespace has more than loopback")
        return 2
    if args.no_netns:
        refuse_remote_connections()
    # A plain kill must still stop knotd (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    address = "127.0.0.1"
    port = 53 if not args.no_netns else free_port(address)
    args.server = f"{address}@{port}"
    workdir = Path(tempfile.mkdtemp(prefix="mailadmin-dnsbench-"))
    knot: Knot | None = None
    proxy: multiprocessing.Process | None = None
    try:
        setup_django(workdir / "data")
        log("generating keys and zones ...")
        domains, zones = build_fixture(args.domains, Keys.generate())
        knot = Knot(workdir / "knot", zones, address, port)
        started = time.perf_counter()
        knot.start()
        knot.sanity_check(domains)
        log(f"knotd serves {len(zones)} zones on {args.server} "
            f"(loaded in {time.perf_counter() - started:.1f} s)")
        server = (address, port)
        if args.rtt:
            server = (address, free_port(address))
            proxy = start_delay_proxy(server, (address, port), args.rtt / 1000)
            args.server += f" through a proxy adding {args.rtt:g} ms a round trip"

        targets = targets_for(domains) if not args.skip_ours else []
        names = [d.name for d in domains]
        if not args.skip_checkdmarc:
            prepare_checkdmarc()
        ours: list[Run] = []
        theirs: list[Run] = []
        last: dict[str, list[Any]] | None = None
        cdm_last: list[dict[str, Any]] | None = None
        # Alternate the tools, so drift on a shared machine hits both alike.
        for run in range(1, max(args.runs, args.checkdmarc_runs) + 1):
            if not args.skip_ours and run <= args.runs:
                result, last = run_ours(knot, server, targets, run, args.concurrency)
                ours.append(result)
                log(f"mailadmin  run {run}: {result.seconds:.2f} s, {result.queries} queries")
            if not args.skip_checkdmarc and run <= args.checkdmarc_runs:
                result, cdm_last = run_checkdmarc(knot, server, names, run)
                theirs.append(result)
                log(f"checkdmarc run {run}: {result.seconds:.2f} s, {result.queries} queries")

        lines, payload = summary(
            args, domains, len(zones), ours, theirs,
            verdict_counts(last) if last is not None else None,
            agreement(domains, last) if last is not None else None,
            checkdmarc_summary(cdm_last) if cdm_last is not None else None)
        if args.profile and not args.skip_ours:
            log("profiling one more run of ours ...")
            payload["profile"] = profile_ours(knot, server, targets, 30)
        if args.json:
            print(json.dumps(payload, indent=2, default=str))
        else:
            print("\n".join(lines))
            if "profile" in payload:
                print("\n" + payload["profile"])
        missed = (bool(ours) and not args.rtt
                  and statistics.median(r.seconds for r in ours) >= GOAL_SECONDS)
        return 1 if missed else 0
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.join(10)
        if knot is not None:
            knot.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
