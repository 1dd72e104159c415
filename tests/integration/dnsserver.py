"""Real DNS on loopback for the DNS health checks: Knot serves the zones, Unbound recurses.

Production asks a recursive resolver, so the checks here do too: Unbound
listens on a free loopback port and knows each test zone as a stub zone on
Knot. Every other name is refused by Unbound itself, so no query ever leaves
the machine. The silent zones' stubs point at a "black hole", a loopback
socket that reads queries and never answers, so a zone whose servers do not
answer can be tested; Unbound waits far longer for it (tens of seconds) than
the panel's client does, so the panel's own timeout is what ends the wait.

The zones use reserved names (.test) and documentation addresses only. Each
broken domain differs from healthy.test in one respect; see `case_zones`.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import secrets
import selectors
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import override_settings

from dkim import services as dkim_services
from dnscheck.findings import DkimExpected, Identity, Target
from domains import services as domain_services
from domains.models import Domain
from tests.integration.mailstack import run

ROOT = Path("/var/tmp")
BINARIES = ["knotd", "knotc", "kdig", "unbound", "unbound-checkconf"]
TTL = 300
NS_NAME = "ns.nowhere.invalid"

# The mail host as the checks should find it.
MAIL_HOST = "mail.mailhost.test"
MAIL_IPV4 = "192.0.2.10"
MAIL_IPV6 = "2001:db8::10"
IP_BLOCK_LIST = "bl.test"
DOMAIN_BLOCK_LIST = "dbl.test"
DKIM_SELECTOR = "mail2026"
HEALTHY = "healthy.test"
# Zones that never answer (stubs on the black hole): a domain, and an IP block list.
SILENT = "slow.test"
SILENT_BLOCK_LIST = "slow-bl.test"
# The only names outside the test zones anything here may ask for: the harness's
# own proof that Unbound refuses them.
OUTSIDE_PROBE = "example.com"

HEALTHY_IDENTITY = Identity(hosts=(MAIL_HOST,), ipv4=(MAIL_IPV4,), ipv6=(MAIL_IPV6,),
                            ip_zones=(IP_BLOCK_LIST,), domain_zones=(DOMAIN_BLOCK_LIST,))


def binary(name: str) -> str:
    """Daemons live in /usr/sbin, which is not on every user's PATH."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    return found or name


def require_dns_binaries() -> None:
    missing = [b for b in BINARIES if binary(b) == b]
    if missing:
        message = (f"DNS daemons missing: {', '.join(missing)} "
                   "(run bin/test to install knot, knot-dnsutils and unbound)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def free_dns_port() -> int:
    """A loopback port free for both UDP and TCP, as DNS servers listen on both."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise AssertionError("no loopback port free for both UDP and TCP")


# ---------------------------------------------------------------- keys


@dataclass(frozen=True)
class DkimKeys:
    """Public keys as after p=: base64 of the DER SubjectPublicKeyInfo."""

    ours: str  # 2048-bit RSA: what healthy domains publish and the panel expects
    stranger: str  # 2048-bit RSA the panel does not know
    short: str  # 1024-bit RSA

    @classmethod
    def generate(cls) -> DkimKeys:
        return cls(ours=_rsa_public_key(2048), stranger=_rsa_public_key(2048),
                   short=_rsa_public_key(1024))


def _rsa_public_key(bits: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def txt(text: str) -> str:
    """TXT record data: long texts as several quoted strings of at most 255 bytes."""
    chunks = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
    return "TXT " + " ".join(f'"{chunk}"' for chunk in chunks)


def dkim_txt(public_key: str) -> str:
    return txt(f"v=DKIM1; k=rsa; p={public_key}")


# ---------------------------------------------------------------- zones


def zone_file(origin: str, records: Sequence[str]) -> str:
    """A zone file for `origin`; records use names relative to it ("@", "_dmarc").

    The NS name is under .invalid, so it has no address anywhere: Unbound asks
    the stub address it is given, and must never go looking for another server.
    """
    return "\n".join([
        f"$ORIGIN {origin}.",
        f"$TTL {TTL}",
        f"@ SOA {NS_NAME}. hostmaster.invalid. 1 3600 600 86400 60",
        f"@ NS {NS_NAME}.",
        *records,
        "",
    ])


def mail_domain(name: str, keys: DkimKeys, *,
                mx: Sequence[str] = (f"10 {MAIL_HOST}.",),
                spf: Sequence[str] = ("v=spf1 mx -all",),
                dkim: str | None = None,  # None: our key; "": no record
                dmarc: Sequence[str] | None = None,
                mta_sts: Sequence[str] = ("v=STSv1; id=20261121T000000",),
                tls_rpt: Sequence[str] | None = None,
                extra: Sequence[str] = ()) -> list[str]:
    """The records of a domain the checks find healthy, unless told otherwise."""
    dmarc = [f"v=DMARC1; p=reject; rua=mailto:dmarc@{name}"] if dmarc is None else dmarc
    tls_rpt = [f"v=TLSRPTv1; rua=mailto:tls@{name}"] if tls_rpt is None else tls_rpt
    return [
        *(f"@ MX {value}" for value in mx),
        *(f"@ {txt(value)}" for value in spf),
        # An unrelated TXT record, as real domains have: not to be taken for SPF.
        f"@ {txt('google-site-verification=not-an-spf-record')}",
        *([f"{DKIM_SELECTOR}._domainkey {dkim_txt(keys.ours if dkim is None else dkim)}"]
          if dkim != "" else []),
        *(f"_dmarc {txt(value)}" for value in dmarc),
        *(f"_mta-sts {txt(value)}" for value in mta_sts),
        *(f"_smtp._tls {txt(value)}" for value in tls_rpt),
        *extra,
    ]


SPF_OUR_ADDRESSES = f"v=spf1 ip4:{MAIL_IPV4} ip6:{MAIL_IPV6} -all"


def _spf_hosts(count: int) -> list[str]:
    """Hosts with addresses that are not ours, for a: terms that cost a lookup each.

    Both A and AAAA: evaluating an IPv6 address asks for AAAA, and a name
    without one would be a void lookup.
    """
    return [record for n in range(1, count + 1)
            for record in (f"h{n}._spf A 198.51.100.{n}", f"h{n}._spf AAAA 2001:db8:ffff::{n}")]


def _spf_include(domain: str, numbers: range) -> str:
    """An included record of a: terms for the hosts numbered `numbers`."""
    terms = " ".join(f"a:h{n}._spf.{domain}" for n in numbers)
    return txt(f"v=spf1 {terms} -all")


def case_zones(keys: DkimKeys) -> dict[str, list[str]]:
    """Every zone Knot serves, by origin.

    Besides the mail host's zones and the block lists: healthy.test, on which
    every check is ok, and one domain per failure, named after it.
    """
    d = mail_domain
    zones: dict[str, list[str]] = {
        "mailhost.test": [
            f"mail A {MAIL_IPV4}",
            f"mail AAAA {MAIL_IPV6}",
            "mail-noptr A 192.0.2.20",  # no PTR for 192.0.2.20
            # 192.0.2.21's PTR names this host, but the host is elsewhere.
            "mail-unconfirmed A 192.0.2.99",
            "mail-listed A 192.0.2.30",
            "mail-grey A 192.0.2.31",
        ],
        "2.0.192.in-addr.arpa": [
            f"10 PTR {MAIL_HOST}.",
            "21 PTR mail-unconfirmed.mailhost.test.",
            "30 PTR mail-listed.mailhost.test.",
            "31 PTR mail-grey.mailhost.test.",
        ],
        "8.b.d.0.1.0.0.2.ip6.arpa": [
            f"{_ip6_reverse_label(MAIL_IPV6, zone_nibbles=8)} PTR {MAIL_HOST}.",
        ],
        IP_BLOCK_LIST: [
            # As DNSBLs do: 127.0.0.2 with a reason for a listed address...
            "30.2.0.192 A 127.0.0.2",
            "30.2.0.192 TXT \"listed for testing\"",
            # ...and 127.255.255.254 for "you may not ask us" (never "listed").
            "31.2.0.192 A 127.255.255.254",
            # The list's own test entry, as every DNSBL has.
            "2.0.0.127 A 127.0.0.2",
        ],
        DOMAIN_BLOCK_LIST: [
            "dbl-listed.test A 127.0.1.2",
            "test.dbl.test A 127.0.1.2",
        ],
        # A domain that receives DMARC reports for others when they ask it to.
        "other.test": [
            "@ MX 10 mx.other.test.",
            "mx A 198.51.100.25",
            "rua-authorised.test._report._dmarc TXT \"v=DMARC1\"",
        ],
        HEALTHY: d(HEALTHY, keys),
        # Healthy too, in other ways: SPF by address, by redirect, at the limits.
        "spf-ip.test": d("spf-ip.test", keys, spf=[SPF_OUR_ADDRESSES]),
        # After a redirect, a bare mx would mean _spf's MX: the record names the domain.
        "spf-redirect.test": d("spf-redirect.test", keys,
                               spf=["v=spf1 redirect=_spf.spf-redirect.test"],
                               extra=[f"_spf {txt('v=spf1 mx:spf-redirect.test -all')}"]),
        "spf-10-lookups.test": d(
            "spf-10-lookups.test", keys,
            spf=["v=spf1 include:l1._spf.spf-10-lookups.test "
                 "include:l2._spf.spf-10-lookups.test mx -all"],
            extra=[f"l1._spf {_spf_include('spf-10-lookups.test', range(1, 5))}",
                   f"l2._spf {_spf_include('spf-10-lookups.test', range(5, 8))}",
                   *_spf_hosts(7)]),
        # Two names that do not exist: void lookups, as many as allowed.
        "spf-2-void.test": d(
            "spf-2-void.test", keys,
            spf=["v=spf1 a:void1.spf-2-void.test a:void2.spf-2-void.test mx -all"]),
        "rua-authorised.test": d(
            "rua-authorised.test", keys,
            dmarc=["v=DMARC1; p=reject; rua=mailto:reports@other.test"]),
        # MX
        "no-mx.test": d("no-mx.test", keys, mx=[], spf=[SPF_OUR_ADDRESSES]),
        "mx-cname.test": d("mx-cname.test", keys, mx=["10 mx.mx-cname.test."],
                           spf=[SPF_OUR_ADDRESSES], extra=[f"mx CNAME {MAIL_HOST}."]),
        "mx-elsewhere.test": d("mx-elsewhere.test", keys, mx=["10 mx.other.test."],
                               spf=[SPF_OUR_ADDRESSES]),
        # PTR: these domains are served by hosts of their own (see IDENTITIES).
        "no-ptr.test": d("no-ptr.test", keys, mx=["10 mail-noptr.mailhost.test."]),
        "ptr-unconfirmed.test": d("ptr-unconfirmed.test", keys,
                                  mx=["10 mail-unconfirmed.mailhost.test."],
                                  spf=["v=spf1 ip4:192.0.2.21 -all"]),
        # SPF
        "spf-none.test": d("spf-none.test", keys, spf=[]),
        "spf-two.test": d("spf-two.test", keys,
                          spf=["v=spf1 mx -all", f"v=spf1 ip4:{MAIL_IPV4} -all"]),
        "spf-syntax.test": d("spf-syntax.test", keys, spf=["v=spf1 mx ip4:192.0.2.300 -all"]),
        # 11 lookups: 2 includes, 4 + 4 a: terms in them, and mx, which is the
        # only term that would match.
        "spf-11-lookups.test": d(
            "spf-11-lookups.test", keys,
            spf=["v=spf1 include:l1._spf.spf-11-lookups.test "
                 "include:l2._spf.spf-11-lookups.test mx -all"],
            extra=[f"l1._spf {_spf_include('spf-11-lookups.test', range(1, 5))}",
                   f"l2._spf {_spf_include('spf-11-lookups.test', range(5, 9))}",
                   *_spf_hosts(8)]),
        "spf-loop.test": d("spf-loop.test", keys,
                           spf=["v=spf1 include:loop._spf.spf-loop.test mx -all"],
                           extra=[f"loop._spf {txt('v=spf1 include:spf-loop.test -all')}"]),
        "spf-3-void.test": d(
            "spf-3-void.test", keys,
            spf=["v=spf1 a:void1.spf-3-void.test a:void2.spf-3-void.test "
                 "a:void3.spf-3-void.test mx -all"]),
        "spf-plus-all.test": d("spf-plus-all.test", keys, spf=["v=spf1 mx +all"]),
        "spf-neutral-all.test": d("spf-neutral-all.test", keys, spf=["v=spf1 mx ?all"]),
        "spf-not-ours.test": d("spf-not-ours.test", keys, spf=["v=spf1 ip4:203.0.113.5 -all"]),
        "spf-ipv4-only.test": d("spf-ipv4-only.test", keys, spf=[f"v=spf1 ip4:{MAIL_IPV4} -all"]),
        # DKIM. dkim-missing.test has our key, but under another selector.
        "dkim-missing.test": d("dkim-missing.test", keys, dkim="",
                               extra=[f"other._domainkey {dkim_txt(keys.ours)}"]),
        "dkim-mismatch.test": d("dkim-mismatch.test", keys, dkim=keys.stranger),
        "dkim-short.test": d("dkim-short.test", keys, dkim=keys.short),
        # DMARC
        "dmarc-none.test": d("dmarc-none.test", keys,
                             dmarc=["v=DMARC1; p=none; rua=mailto:dmarc@dmarc-none.test"]),
        "dmarc-missing.test": d("dmarc-missing.test", keys, dmarc=[]),
        "dmarc-two.test": d("dmarc-two.test", keys,
                            dmarc=["v=DMARC1; p=reject; rua=mailto:dmarc@dmarc-two.test",
                                   "v=DMARC1; p=quarantine; rua=mailto:dmarc@dmarc-two.test"]),
        "dmarc-bad-policy.test": d("dmarc-bad-policy.test", keys,
                                   dmarc=["v=DMARC1; p=block; rua=mailto:d@dmarc-bad-policy.test"]),
        "dmarc-no-rua.test": d("dmarc-no-rua.test", keys, dmarc=["v=DMARC1; p=reject"]),
        "rua-unauthorised.test": d("rua-unauthorised.test", keys,
                                   dmarc=["v=DMARC1; p=reject; rua=mailto:reports@other.test"]),
        # MTA-STS and TLS-RPT
        "mta-sts-missing.test": d("mta-sts-missing.test", keys, mta_sts=[]),
        "mta-sts-invalid.test": d("mta-sts-invalid.test", keys, mta_sts=["v=STSv1"]),
        "tls-rpt-missing.test": d("tls-rpt-missing.test", keys, tls_rpt=[]),
        "tls-rpt-invalid.test": d("tls-rpt-invalid.test", keys, tls_rpt=["v=TLSRPTv1"]),
        # Block lists. A listed domain (in dbl.test), and two domains whose hosts'
        # addresses are in bl.test: listed, and answered with 127.255.255.254.
        "dbl-listed.test": d("dbl-listed.test", keys),
        "bl-listed.test": d("bl-listed.test", keys, mx=["10 mail-listed.mailhost.test."]),
        "bl-grey.test": d("bl-grey.test", keys, mx=["10 mail-grey.mailhost.test."]),
    }
    return zones


def _ip6_reverse_label(address: str, *, zone_nibbles: int) -> str:
    nibbles = ipaddress.IPv6Address(address).exploded.replace(":", "")[::-1]
    return ".".join(nibbles[: len(nibbles) - zone_nibbles])


# The domains served by a host of their own, with what the panel knows of it.
IDENTITIES: dict[str, Identity] = {
    "no-ptr.test": Identity(hosts=("mail-noptr.mailhost.test",), ipv4=("192.0.2.20",),
                            ip_zones=(IP_BLOCK_LIST,), domain_zones=(DOMAIN_BLOCK_LIST,)),
    "ptr-unconfirmed.test": Identity(hosts=("mail-unconfirmed.mailhost.test",),
                                     ipv4=("192.0.2.21",), ip_zones=(IP_BLOCK_LIST,),
                                     domain_zones=(DOMAIN_BLOCK_LIST,)),
    "bl-listed.test": Identity(hosts=("mail-listed.mailhost.test",), ipv4=("192.0.2.30",),
                               ip_zones=(IP_BLOCK_LIST,), domain_zones=(DOMAIN_BLOCK_LIST,)),
    "bl-grey.test": Identity(hosts=("mail-grey.mailhost.test",), ipv4=("192.0.2.31",),
                             ip_zones=(IP_BLOCK_LIST,), domain_zones=(DOMAIN_BLOCK_LIST,)),
}


# ---------------------------------------------------------------- the black hole


class BlackHole:
    """A DNS server that never answers: reads each query over UDP and TCP and drops it."""

    def __init__(self) -> None:
        self.port = 0
        self.received = 0
        self._selector = selectors.DefaultSelector()
        self._stop_r, self._stop_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="dns-black-hole", daemon=True)

    def start(self) -> None:
        udp, tcp = self._bind()
        self._selector.register(udp, selectors.EVENT_READ, "udp")
        self._selector.register(tcp, selectors.EVENT_READ, "listen")
        self._selector.register(self._stop_r, selectors.EVENT_READ, "stop")
        self._thread.start()

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            tcp = socket.socket()
            try:
                tcp.bind(("127.0.0.1", udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(64)
            self.port = int(udp.getsockname()[1])
            return udp, tcp
        raise AssertionError("the black hole found no port free for both UDP and TCP")

    def _serve(self) -> None:
        while True:
            for key, _ in self._selector.select():
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if key.data == "stop":
                    return
                if key.data == "udp":
                    sock.recv(65535)
                    self.received += 1
                elif key.data == "listen":
                    conn, _ = sock.accept()
                    self._selector.register(conn, selectors.EVENT_READ, "tcp")
                else:
                    data = b""
                    with contextlib.suppress(OSError):
                        data = sock.recv(65535)
                    if data:
                        self.received += 1
                    else:
                        self._selector.unregister(sock)
                        sock.close()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop_w.send(b"x")
            self._thread.join(timeout=5)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()
        self._stop_r.close()
        self._stop_w.close()


# ---------------------------------------------------------------- the servers


@dataclass
class DnsServers:
    root: Path
    knot_port: int
    unbound_port: int
    black_hole: BlackHole
    keys: DkimKeys
    zones: list[str]
    identity: Identity = HEALTHY_IDENTITY
    logs: list[Path] = field(default_factory=list)

    @property
    def resolver(self) -> str:
        """The recursive resolver, as MAILADMIN_DNS_RESOLVERS spells it."""
        return f"127.0.0.1@{self.unbound_port}"

    @property
    def overrides(self) -> dict[str, Any]:
        """Settings that make the panel see healthy.test's mail host through this resolver."""
        return {
            "MAILADMIN_MAIL_HOSTNAME": MAIL_HOST,
            "MAILADMIN_MX_HOSTS": [MAIL_HOST],
            "MAILADMIN_PUBLIC_IPV4": [MAIL_IPV4],
            "MAILADMIN_PUBLIC_IPV6": [MAIL_IPV6],
            "MAILADMIN_DNSBL_ZONES": [IP_BLOCK_LIST],
            "MAILADMIN_DNSBL_DOMAIN_ZONES": [DOMAIN_BLOCK_LIST],
            "MAILADMIN_DNS_RESOLVERS": [self.resolver],
            "MAILADMIN_DNS_TIMEOUT": 1.0,
            "MAILADMIN_DNS_TRIES": 2,
        }

    @property
    def environ(self) -> dict[str, str]:
        """The same as environment variables, for a process of its own (a Celery worker)."""
        return {name: ",".join(value) if isinstance(value, list) else str(value)
                for name, value in self.overrides.items()}

    def identity_for(self, domain: str) -> Identity:
        return IDENTITIES.get(domain, self.identity)

    def target(self, domain: str, **changes: Any) -> Target:
        """The domain as the panel knows it: our DKIM key, postmaster@ and abuse@ aliases."""
        key = self.keys.short if domain == "dkim-short.test" else self.keys.ours
        values: dict[str, Any] = {
            "name": domain, "dkim_keys": (DkimExpected(DKIM_SELECTOR, key),),
            "required": {"postmaster": "alias", "abuse": "alias"},
        }
        values.update(changes)
        return Target(**values)

    def create_domain(self, name: str) -> Domain:
        """The domain in the database as target() describes it, through the services."""
        domain = domain_services.create_domain(actor="t", name=name)
        for local in ("postmaster", "abuse"):
            domain_services.create_alias(actor="t", source=f"{local}@{name}",
                                         destinations="hostmaster@other.test", checked_domains=None)
        dkim_services.set_key(actor="t", domain=domain, selector=DKIM_SELECTOR,
                                       public_key=self.keys.ours)
        return domain

    def kdig(self, *args: str, port: int | None = None, timeout: float = 10
             ) -> subprocess.CompletedProcess[str]:
        return run(["kdig", "@127.0.0.1", "-p", str(port or self.unbound_port),
                    "+timeout=1", "+retry=0", *args], check=False, timeout=timeout)

    def tail(self, log: str, lines: int = 30) -> str:
        path = self.root / log
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def unbound_log(self) -> str:
        path = self.root / "unbound.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _knot_config(root: Path, port: int, zones: Sequence[str]) -> str:
    zone_list = "\n".join(f"  - domain: {zone}\n    file: {zone}.zone" for zone in zones)
    return f"""server:
    rundir: "{root / 'knot-run'}"
    listen: 127.0.0.1@{port}
    # Not a daemon that outlives the tests: no background threads to spare.
    background-workers: 1
log:
  - target: {root / 'knot.log'}
    any: info
database:
    storage: "{root / 'knot-db'}"
template:
  - id: default
    storage: "{root / 'zones'}"
    # The zone files are the whole truth: nothing written back, nothing kept.
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
{zone_list}
"""


def _unbound_config(root: Path, port: int, knot_port: int, zones: Sequence[str],
                    silent: Sequence[str], black_hole_port: int) -> str:
    stubs = [(zone, knot_port) for zone in zones] + [(zone, black_hole_port) for zone in silent]
    local = "\n".join(f'    local-zone: "{zone}." transparent' for zone, _ in stubs)
    stub_zones = "\n".join(
        f'stub-zone:\n    name: "{zone}."\n    stub-addr: 127.0.0.1@{zone_port}'
        for zone, zone_port in stubs)
    return f"""server:
    interface: 127.0.0.1
    port: {port}
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    # The test zones' servers are on loopback, which Unbound shuns by default.
    do-not-query-localhost: no
    chroot: ""
    username: ""
    directory: "{root}"
    pidfile: "{root / 'unbound.pid'}"
    use-syslog: no
    logfile: "{root / 'unbound.log'}"
    # Level 2 logs each name resolved and which server replied (the leak check).
    verbosity: 2
    log-local-actions: yes
    log-servfail: yes
    num-threads: 1
    so-reuseport: no
    # No DNSSEC: the test zones are unsigned and there is no trust anchor.
    module-config: "iterator"
    # Keep asking the black hole rather than answering from a "server is down"
    # verdict, so a client always meets a zone that does not answer.
    infra-keep-probing: yes
    # Nothing but the test zones: every other name is refused on the spot...
    local-zone: "." refuse
    # ...and the test zones (some are Unbound's default empty zones) resolve
    # through their stubs.
{local}
# Should the refusal above ever go, the root is a closed loopback port.
stub-zone:
    name: "."
    stub-addr: 127.0.0.1@9
{stub_zones}
"""


def _wait_for_answer(zone: str, port: int, what: str, logs: Sequence[str], root: Path,
                     timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = run(["kdig", "@127.0.0.1", "-p", str(port), "+timeout=1", "+retry=0",
                      "+short", "SOA", zone], check=False)
        if answer.returncode == 0 and answer.stdout.startswith(f"{NS_NAME}. "):
            return
        time.sleep(0.1)
    tails = []
    for name in logs:
        path = root / name
        tails.append(f"-- {name}:\n" + (path.read_text(errors="replace")[-3000:]
                                        if path.exists() else "(none)"))
    raise AssertionError(f"{what} did not answer SOA {zone} on port {port}:\n"
                         + "\n".join(tails))


@contextlib.contextmanager
def dns_servers(zones: Mapping[str, Sequence[str]], *, silent: Sequence[str] = (),
                keys: DkimKeys | None = None) -> Iterator[DnsServers]:
    """Knot serving `zones`, and Unbound resolving them; `silent` zones never answer."""
    require_dns_binaries()
    root = Path(_make_root())
    knot_port, unbound_port = free_dns_port(), free_dns_port()
    black_hole = BlackHole()
    servers = DnsServers(root=root, knot_port=knot_port, unbound_port=unbound_port,
                         black_hole=black_hole, keys=keys or DkimKeys.generate(),
                         zones=list(zones))
    knot_conf, unbound_conf = root / "knot.conf", root / "unbound.conf"
    unbound: subprocess.Popen[bytes] | None = None
    try:
        (root / "zones").mkdir()
        (root / "knot-db").mkdir()
        (root / "knot-run").mkdir()
        for origin, records in zones.items():
            (root / "zones" / f"{origin}.zone").write_text(zone_file(origin, records))
        knot_conf.write_text(_knot_config(root, knot_port, list(zones)))
        run(["knotc", "-c", str(knot_conf), "conf-check"])
        run(["knotd", "-c", str(knot_conf), "-d"])
        for origin in zones:
            _wait_for_answer(origin, knot_port, "knotd", ["knot.log"], root)

        black_hole.start()
        unbound_conf.write_text(_unbound_config(root, unbound_port, knot_port, list(zones),
                                                silent, black_hole.port))
        run(["unbound-checkconf", str(unbound_conf)])
        with open(root / "unbound.out", "wb") as out:
            unbound = subprocess.Popen([binary("unbound"), "-d", "-c", str(unbound_conf)],
                                       stdout=out, stderr=subprocess.STDOUT)
        _wait_for_answer(next(iter(zones)), unbound_port, "unbound",
                         ["unbound.out", "unbound.log"], root)
        yield servers
    finally:
        if unbound is not None:
            unbound.terminate()
            try:
                unbound.wait(timeout=10)
            except subprocess.TimeoutExpired:
                unbound.kill()
                unbound.wait(timeout=10)
        _stop_knot(root, knot_conf)
        black_hole.stop()
        if not os.environ.get("MAILADMIN_KEEP_TEST_DAEMONS"):
            shutil.rmtree(root, ignore_errors=True)


def _make_root() -> str:
    root = ROOT / f"mailadmin-tests-dns-{os.getpid()}-{secrets.token_hex(3)}"
    root.mkdir(mode=0o755)
    return str(root)


def _stop_knot(root: Path, knot_conf: Path) -> None:
    pid_file = root / "knot-run" / "knot.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().strip() or 0)
    run(["knotc", "-c", str(knot_conf), "stop"], check=False)
    for _ in range(100):
        if not pid_file.exists() or not _alive(pid):
            return
        time.sleep(0.1)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def dns_servers_session() -> Iterator[DnsServers]:
    """Knot and Unbound serving the test zones (see `case_zones`) for the whole session."""
    require_dns_binaries()
    keys = DkimKeys.generate()
    with dns_servers(case_zones(keys), silent=[SILENT, SILENT_BLOCK_LIST], keys=keys) as servers:
        yield servers


@pytest.fixture
def dns(dns_servers_session: DnsServers) -> Iterator[DnsServers]:
    """The test DNS servers, with the panel's settings pointing at them (healthy.test's host)."""
    with override_settings(**dns_servers_session.overrides):
        yield dns_servers_session
