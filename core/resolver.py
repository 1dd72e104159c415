"""DNS lookups for the checks: bounded in time, memoised per batch, counted.

Queries go out with dnspython's low-level `dns.query` rather than its stub
resolver, so that each try has its own timeout, every packet is counted, and
a CNAME in the answer is visible to the caller (an MX target must not be one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
from django.conf import settings

MAX_CNAME_CHAIN = 8

# Statuses: "ok" (records), "nxdomain", "nodata" (name exists, no records of the
# type), "timeout", "servfail", "error" (refused, malformed, unreachable).
FAILED = frozenset({"timeout", "servfail", "error"})


@dataclass(frozen=True)
class Answer:
    name: str
    rdtype: str
    status: str
    records: tuple[str, ...] = ()
    cname: str = ""  # where the name points, when it is an alias
    detail: str = ""
    unreachable: bool = False  # no server could be sent the query (refused port, no route)

    @property
    def unanswered(self) -> bool:
        """No server said anything: the lookup timed out or reached nobody."""
        return self.status == "timeout" or self.unreachable

    @property
    def failed(self) -> bool:
        """The answer could not be had: whatever depends on it is unknown."""
        return self.status in FAILED

    @property
    def void(self) -> bool:
        return self.status in {"nxdomain", "nodata"}

    def why(self) -> str:
        """Why there is no answer, in words for a reason line."""
        if self.detail == "skipped":
            return (f"{self.name} was not asked: an earlier lookup in the same domain "
                    "timed out")
        if self.detail == "budget":
            return f"{self.name} was not asked: the domain's time for checks ran out"
        if self.status == "timeout":
            return f"the lookup of {self.name} {self.rdtype} timed out"
        if self.status == "servfail":
            return f"DNS did not answer for {self.name} {self.rdtype} (SERVFAIL)"
        if self.status == "nxdomain":
            return f"{self.name} does not exist"
        if self.status == "nodata":
            return f"{self.name} has no {self.rdtype} record"
        return f"the lookup of {self.name} {self.rdtype} failed: {self.detail or self.status}"


def parse_nameserver(text: str) -> tuple[str, int]:
    """"192.0.2.1", "192.0.2.1@5353" or "[2001:db8::1]:53" style → (address, port)."""
    text = text.strip()
    if "@" in text:
        address, port = text.rsplit("@", 1)
        return address.strip("[]"), int(port)
    if text.startswith("[") and "]:" in text:
        address, port = text[1:].split("]:", 1)
        return address, int(port)
    return text.strip("[]"), 53


class Resolver:
    """Asks the configured recursive resolvers; one instance serves one batch.

    Thread-safe: domains of a batch are checked in parallel, and names they
    share (the mail host, a common SPF include) are asked once.
    """

    def __init__(self, nameservers: Sequence[str] | None = None, *, timeout: float = 2.0,
                 tries: int = 2) -> None:
        if nameservers:
            self.servers = [parse_nameserver(ns) for ns in nameservers]
        else:
            system = dns.resolver.Resolver()
            self.servers = [(str(ns), int(system.port)) for ns in system.nameservers]
        self.timeout = timeout
        self.tries = max(1, tries)
        self.queries = 0
        self._memo: dict[tuple[str, str], Answer] = {}
        self._inflight: dict[tuple[str, str], threading.Event] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        """The servers asked, as an admin would write them (127.0.0.1, [::1]:5353)."""
        def one(address: str, port: int) -> str:
            shown = f"[{address}]" if ":" in address else address
            return shown if port == 53 else f"{shown}:{port}"
        return ", ".join(one(address, port) for address, port in self.servers) or "none"

    @classmethod
    def from_settings(cls) -> Resolver:
        return cls(settings.MAILADMIN_DNS_RESOLVERS or None,
                   timeout=settings.MAILADMIN_DNS_TIMEOUT, tries=settings.MAILADMIN_DNS_TRIES)

    def session(self, budget: float | None = None, zone: str = "") -> Session:
        deadline = time.monotonic() + budget if budget else None
        return Session(self, deadline, zone)

    def lookup(self, name: str, rdtype: str, deadline: float | None = None) -> Answer:
        key = (name.lower().rstrip("."), rdtype)
        while True:
            with self._lock:
                if key in self._memo:
                    return self._memo[key]
                waiting = self._inflight.get(key)
                if waiting is None:
                    self._inflight[key] = threading.Event()
                    break
            # Another domain's thread is asking the same; its answer is ours.
            waiting.wait(self.timeout * self.tries + 1)
        try:
            answer = self._ask(key[0], rdtype, deadline)
        finally:
            with self._lock:
                event = self._inflight.pop(key)
        with self._lock:
            # A budget cut is this domain's, not the name's: do not keep it.
            if answer.detail != "budget":
                self._memo[key] = answer
        event.set()
        return answer

    def _count(self) -> None:
        with self._lock:
            self.queries += 1

    def _ask(self, name: str, rdtype: str, deadline: float | None) -> Answer:
        try:
            qname = dns.name.from_text(name)
        except (dns.exception.DNSException, UnicodeError) as error:
            return Answer(name, rdtype, "error", detail=f"not a valid DNS name ({error})")
        query = dns.message.make_query(qname, rdtype)
        outcome = Answer(name, rdtype, "error", detail="no resolver configured")
        refused: set[tuple[str, int]] = set()
        for _try in range(self.tries):
            for address, port in self.servers:
                if (address, port) in refused:
                    continue  # a refusal does not change on asking again
                wait = self.timeout
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        return Answer(name, rdtype, "timeout", detail="budget")
                try:
                    self._count()
                    response = dns.query.udp(query, address, timeout=wait, port=port,
                                             ignore_unexpected=True)
                    if response.flags & dns.flags.TC:
                        self._count()
                        response = dns.query.tcp(query, address, timeout=wait, port=port)
                except dns.exception.Timeout:
                    outcome = Answer(name, rdtype, "timeout")
                    continue
                except (OSError, dns.exception.DNSException) as error:
                    outcome = Answer(name, rdtype, "error", detail=type(error).__name__,
                                     unreachable=isinstance(error, OSError))
                    continue
                rcode = response.rcode()
                if rcode == dns.rcode.NXDOMAIN:
                    return Answer(name, rdtype, "nxdomain")
                if rcode == dns.rcode.NOERROR:
                    return _records(name, rdtype, qname, response)
                if rcode == dns.rcode.SERVFAIL:
                    outcome = Answer(name, rdtype, "servfail")
                else:
                    refused.add((address, port))
                    outcome = Answer(name, rdtype, "error", detail=dns.rcode.to_text(rcode))
        return outcome


def _records(name: str, rdtype: str, qname: dns.name.Name,
             response: dns.message.Message) -> Answer:
    wanted = dns.rdatatype.from_text(rdtype)
    current, cname = qname, ""
    for _ in range(MAX_CNAME_CHAIN):
        alias = _find(response, current, dns.rdatatype.CNAME)
        if alias is None or wanted == dns.rdatatype.CNAME:
            break
        current = alias[0].target
        cname = cname or current.to_text(omit_final_dot=True).lower()
    rrset = _find(response, current, wanted)
    if rrset is None:
        return Answer(name, rdtype, "nodata", cname=cname)
    return Answer(name, rdtype, "ok", tuple(_text(rdata, wanted) for rdata in rrset), cname)


def _find(response: dns.message.Message, name: dns.name.Name,
          rdtype: int) -> dns.rrset.RRset | None:
    for rrset in response.answer:
        if rrset.name == name and rrset.rdtype == rdtype \
                and rrset.rdclass == dns.rdataclass.IN:
            return rrset
    return None


def _text(rdata: Any, rdtype: int) -> str:
    # Any: each record type's fields (strings, exchange, target) are its own.
    if rdtype == dns.rdatatype.TXT:
        return b"".join(rdata.strings).decode("utf-8", "replace")
    if rdtype == dns.rdatatype.MX:
        return f"{rdata.preference} {rdata.exchange.to_text(omit_final_dot=True).lower()}"
    if rdtype in (dns.rdatatype.PTR, dns.rdatatype.CNAME, dns.rdatatype.NS):
        return str(rdata.target.to_text(omit_final_dot=True).lower())
    return str(rdata.to_text())


class Session:
    """One domain's view of the batch resolver, with that domain's time budget."""

    def __init__(self, resolver: Resolver, deadline: float | None, zone: str = "") -> None:
        self.resolver = resolver
        self.deadline = deadline
        self.zone = zone.lower().rstrip(".")
        self.zone_silent = False
        self.asked = 0
        self.answered = 0  # any reply, even SERVFAIL: the resolver is there

    @property
    def resolver_silent(self) -> bool:
        """No lookup of this session had a reply: each timed out, reached no
        server, or was not asked because an earlier one timed out."""
        return self.asked > 0 and self.answered == 0

    def __call__(self, name: str, rdtype: str) -> Answer:
        answer = self._lookup(name, rdtype)
        self.asked += 1
        if not answer.unanswered:
            self.answered += 1
        return answer

    def _lookup(self, name: str, rdtype: str) -> Answer:
        inside = bool(self.zone) and (name.lower().rstrip(".") == self.zone
                                      or name.lower().rstrip(".").endswith("." + self.zone))
        if inside and self.zone_silent:
            # Its servers did not answer once; asking the rest of the names
            # would only spend the budget waiting for each of them.
            return Answer(name, rdtype, "timeout", detail="skipped")
        answer = self.resolver.lookup(name, rdtype, self.deadline)
        if inside and answer.status == "timeout":
            self.zone_silent = True
        return answer

    def addresses(self, name: str) -> tuple[list[str], Answer | None]:
        """A and AAAA of `name`, and the first failed answer if either failed."""
        found: list[str] = []
        failure = None
        for rdtype in ("A", "AAAA"):
            answer = self(name, rdtype)
            if answer.failed and failure is None:
                failure = answer
            found.extend(answer.records)
        return found, failure
