"""Is a key's record published? Asked of the domain's authoritative servers, not a cache.

The NS records and the servers' addresses come through the recursive
resolvers the DNS health checks use (dnscheck's resolver); the record itself
is asked of every authoritative server directly, without recursion, so a
cached answer (or a cached absence) never counts. A key counts as seen only
when every server that can be asked shows it: a secondary that has not
transferred the zone yet would still answer "no record" to some receivers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from django.conf import settings
from django.utils import timezone

from core.actor import Actor
from core.resolver import Resolver
from core.tags import BadTagList, parse_tags
from dkim import services
from dkim.models import DkimKey
from dkim.services import Observation

log = logging.getLogger(__name__)
State = DkimKey.State
CHECKED_STATES = (State.PENDING, State.REVOKED)


@dataclass(frozen=True)
class Server:
    """One name server, by name, with every address it has (IPv4 first)."""

    name: str
    addresses: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.name} ({', '.join(self.addresses)})"


def authoritative_servers(resolver: Resolver, domain: str) -> tuple[list[Server], str]:
    """The servers of the zone `domain` is in, and why there are none when there are none.

    The zone is the nearest name at or above `domain` with NS records. An NS
    name without an address is left out: nobody can ask it.
    """
    labels = domain.lower().rstrip(".").split(".")
    for start in range(len(labels) - 1):
        zone = ".".join(labels[start:])
        answer = resolver.lookup(zone, "NS")
        if answer.failed:
            return [], f"The NS records of {zone} could not be had: {answer.why()}."
        if answer.status == "ok" and not answer.cname:
            break
    else:
        return [], f"No NS records were found for {domain} or above it."
    servers: list[Server] = []
    for name in sorted(answer.records):
        addresses = tuple(address for rdtype in ("A", "AAAA")
                          for address in resolver.lookup(name, rdtype).records)
        if addresses:
            servers.append(Server(name, addresses))
    if not servers:
        return [], f"No name server of {zone} ({', '.join(answer.records)}) has an address."
    return servers, ""


def ask(server: Server, owner: str, timeout: float, tries: int) -> tuple[str, list[str], int]:
    """(status, TXT texts, TTL) of `owner` at one server: "ok", "missing" or "unknown".

    Its addresses are tried in turn: a host without an IPv6 route still
    hears the server over IPv4, as most of the world would.
    """
    query = dns.message.make_query(dns.name.from_text(owner), dns.rdatatype.TXT)
    query.flags &= ~dns.flags.RD
    port = settings.MAILADMIN_DNS_AUTHORITATIVE_PORT
    problem = "did not answer"
    for _try in range(max(1, tries)):
        for address in server.addresses:
            try:
                response = dns.query.udp(query, address, timeout=timeout, port=port,
                                         ignore_unexpected=True)
                if response.flags & dns.flags.TC:
                    response = dns.query.tcp(query, address, timeout=timeout, port=port)
            except dns.exception.Timeout:
                continue
            except (OSError, dns.exception.DNSException) as error:
                problem = f"could not be asked ({type(error).__name__})"
                continue
            return _answered(query, response)
    return "unknown", [problem], 0


def _answered(query: dns.message.Message, response: dns.message.Message
              ) -> tuple[str, list[str], int]:
    if not response.flags & dns.flags.AA:
        return "unknown", ["not authoritative for the name"], 0
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return "missing", [], 0
    if rcode != dns.rcode.NOERROR:
        return "unknown", [dns.rcode.to_text(rcode)], 0
    for rrset in response.answer:
        if (rrset.name == query.question[0].name and rrset.rdtype == dns.rdatatype.TXT
                and rrset.rdclass == dns.rdataclass.IN):
            texts = [b"".join(r.strings).decode("utf-8", "replace") for r in rrset]
            return "ok", texts, int(rrset.ttl)
    return "missing", [], 0


def judge(key: DkimKey, texts: list[str]) -> tuple[str, str]:
    """(status, what the server shows) for one server's TXT texts at the key's name."""
    found = [t for t in texts if "p=" in t.replace(" ", "")]
    if not found:
        return "missing", "no DKIM record"
    if len(found) > 1:
        return "mismatch", f"{len(found)} DKIM records"
    try:
        tags = parse_tags(found[0])
    except BadTagList as error:
        return "mismatch", f"a record that does not parse ({error})"
    published = re.sub(r"\s+", "", tags.get("p", ""))
    algorithm = tags.get("k", "rsa").lower() or "rsa"
    if not published:
        return "revoked", "the revoked form (p= empty)"
    if published != key.public_key or algorithm != key.algorithm:
        return "mismatch", f"another key (k={algorithm}; p={published[:16]}…)"
    return "match", "this key"


def observe(key: DkimKey, servers: list[Server]) -> Observation:
    """What every server shows for the key, summed up as one Observation."""
    timeout, tries = settings.MAILADMIN_DNS_TIMEOUT, settings.MAILADMIN_DNS_TRIES
    owner = key.owner
    statuses: dict[str, list[str]] = {}
    ttl = 0
    for server in servers:
        status, texts, seen_ttl = ask(server, owner, timeout, tries)
        if status == "unknown":
            why = f"{server} did not answer for {owner} with authority"
            statuses.setdefault("unknown", []).append(why + (f" ({texts[0]})" if texts else ""))
            continue
        verdict, shown = judge(key, texts)
        statuses.setdefault(verdict, []).append(f"{server} shows {shown}")
        if verdict in ("match", "revoked"):
            ttl = max(ttl, seen_ttl)
    for bad in ("unknown", "mismatch", "missing"):
        if bad in statuses:
            reason = "; ".join(statuses[bad])
            if bad == "mismatch":
                reason = f"Wrong record at {owner}: {reason}."
            elif bad == "missing":
                reason = f"Not published yet at {owner}: {reason}."
            else:
                reason = f"Not confirmed: {reason}."
            return Observation(bad, reason, None)
    if "revoked" in statuses and "match" in statuses:
        return Observation("mismatch", f"The servers of {owner} disagree: "
                           + "; ".join(statuses["revoked"] + statuses["match"]) + ".")
    status = "revoked" if "revoked" in statuses else "match"
    return Observation(status, "", ttl)


def check_keys(keys: Iterable[DkimKey], *, actor: Actor,
               resolver: Resolver | None = None) -> list[tuple[DkimKey, Observation]]:
    """Look for each pending or revoked key's record, and move the key as DNS allows."""
    resolver = resolver or Resolver.from_settings()
    zones: dict[str, tuple[list[Server], str]] = {}
    results = []
    for key in keys:
        if key.state not in CHECKED_STATES or (key.state == State.PENDING
                                               and not key.public_key):
            continue
        name = key.domain_name
        if name not in zones:
            zones[name] = authoritative_servers(resolver, name)
        servers, problem = zones[name]
        seen = observe(key, servers) if servers else Observation("unknown", problem)
        try:
            if key.state == State.PENDING:
                key = services.record_observation(actor=actor, key=key, seen=seen,
                                                  now=timezone.now())
            else:
                services.request_removal(actor=actor, key=key, seen=seen)
        except Exception:
            # One key's trouble must not stop the others' checks.
            log.exception("DKIM publish check of %s failed", key.owner)
            continue
        results.append((key, seen))
    return results
