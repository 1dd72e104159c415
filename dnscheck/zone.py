"""The records a domain should publish, computed from the settings and the domain alone.

Shown before any check has run; each record is marked with the verdict of
the check that looks at it (its key: check name and subject) once there is
one. dnscheck builds this rather than domains because it reads dkim and
clientsetup, which sit above domains.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from clientsetup import selectors as client_setup
from dkim import records as dkim_records
from dkim import selectors as dkim_keys
from dnscheck.checks import DMARC_SUGGESTION, spf_suggestion
from dnscheck.findings import Identity
from dnscheck.models import Verdict
from dnscheck.selectors import latest_run
from domains.models import AliasDomain, Domain
from mailhost.models import MailHost

TTL = 3600


@dataclass(frozen=True)
class ZoneRecord:
    owner: str  # absolute, without the final dot
    type: str
    value: str  # as the zone file writes it after the type (TXT: the plain text)
    check: str = ""  # the check that looks at it, "" when none does
    subject: str = ""
    # Not in the domain's zone: published elsewhere (the PTR by whoever runs the
    # addresses, a host name under another domain by its zone's admin).
    elsewhere: str = ""
    verdict: Verdict | None = None  # the last check's, once there is one

    @property
    def key(self) -> tuple[str, str]:
        return (self.check, self.subject)

    def host(self, origin: str) -> str:
        """The name as web DNS editors ask for it: relative to the domain, "@" for the apex."""
        if self.owner == origin:
            return "@"
        suffix = "." + origin
        return self.owner.removesuffix(suffix) if self.owner.endswith(suffix) else self.owner + "."

    @property
    def editor_value(self) -> str:
        """The value as web DNS editors take it: a TXT value longer than one
        character-string (255 bytes) as several quoted strings on one line, else as is."""
        if self.type != "TXT":
            return self.value
        quoted, pieces = dkim_records.quoted_txt(self.value)
        return quoted if pieces > 1 else self.value

    @property
    def zone_value(self) -> str:
        if self.type != "TXT":
            return self.value
        quoted, pieces = dkim_records.quoted_txt(self.value)
        return f"( {quoted} )" if pieces > 1 else quoted

    def line(self) -> str:
        return f"{self.owner}. {TTL} IN {self.type} {self.zone_value}"


@dataclass(frozen=True)
class Zone:
    domain: str
    records: tuple[ZoneRecord, ...]
    notes: tuple[str, ...] = ()  # what is missing to compute a record
    checked: bool = False  # a check has run
    silent_resolver: str = ""  # the latest check had no answer from it: no verdicts

    @property
    def in_zone(self) -> list[ZoneRecord]:
        return [r for r in self.records if not r.elsewhere]

    @property
    def outside(self) -> list[ZoneRecord]:
        return [r for r in self.records if r.elsewhere]

    def text(self) -> str:
        """A zone-file fragment: the domain's own records, the others as comments."""
        lines = [f"; Records to publish for {self.domain}, made by mailadmin.",
                 f"$ORIGIN {self.domain}.", f"$TTL {TTL}"]
        lines.extend(f"; {note}" for note in self.notes)
        check = None
        for record in self.in_zone:
            if record.check != check:
                check = record.check
                lines.append(f"; {check or 'mail clients'}")
            lines.append(record.line())
        for record in self.outside:
            lines.append(f"; {record.elsewhere}: {record.line()}")
        return "\n".join(lines) + "\n"


def _within(name: str, domain: str) -> bool:
    return name == domain or name.endswith("." + domain)


def records_for(domain: str, identity: Identity, dkim: Iterable[tuple[str, str, str]],
                client_lines: Iterable[str], *, host_records: bool = True
                ) -> tuple[list[ZoneRecord], list[str]]:
    """Every record `domain` needs, and a note for each that cannot be computed.

    `dkim`: (selector, algorithm, public key) of each key to publish;
    `client_lines`: clientsetup's zone lines (SRV, autoconfig, autodiscover);
    `host_records`: with the mail host's A/AAAA and PTR records (an alias
    domain leaves them to its target's list).
    """
    records: list[ZoneRecord] = []
    notes: list[str] = []
    if identity.hosts:
        records += [ZoneRecord(domain, "MX", f"{10 * (i + 1)} {host}.", "mx")
                    for i, host in enumerate(identity.hosts)]
    else:
        notes.append(identity.unset_hostname("the MX record to publish"))
    records.append(ZoneRecord(domain, "TXT", spf_suggestion(identity), "spf"))
    records += [ZoneRecord(f"{selector}._domainkey.{domain}", "TXT",
                           dkim_records.record_value(algorithm, key), "dkim", selector)
                for selector, algorithm, key in dkim]
    records.append(ZoneRecord(f"_dmarc.{domain}", "TXT", DMARC_SUGGESTION.format(domain=domain),
                              "dmarc"))
    if host_records:
        records += _host_records(domain, identity)
        if identity.hosts and not identity.addresses:
            notes.append("The public addresses are not set on the Mail host page: "
                         "no A/AAAA or PTR records to show.")
    for line in client_lines:
        owner, _ttl, _class, kind, value = line.split(None, 4)
        records.append(ZoneRecord(owner.rstrip("."), kind, value))
    return records, notes


def _host_records(domain: str, identity: Identity) -> list[ZoneRecord]:
    """The mail host's A/AAAA records, and the PTR records its addresses' provider sets."""
    records = []
    for host in identity.hosts:
        for address in identity.addresses:
            kind = "A" if ipaddress.ip_address(address).version == 4 else "AAAA"
            records.append(ZoneRecord(
                host, kind, address, "host-address", host,
                elsewhere="" if _within(host, domain) else f"in the zone of {host}"))
    if identity.hostname:
        for address in identity.addresses:
            reverse = ipaddress.ip_address(address).reverse_pointer
            records.append(ZoneRecord(reverse, "PTR", f"{identity.hostname}.", "ptr", address,
                                      elsewhere="ask the provider of the address"))
    return records


def with_verdicts(records: Iterable[ZoneRecord], verdicts: Mapping[tuple[str, str], int]
                  ) -> list[ZoneRecord]:
    return [ZoneRecord(r.owner, r.type, r.value, r.check, r.subject, r.elsewhere,
                       Verdict(verdicts[r.key]) if r.check and r.key in verdicts else None)
            for r in records]


def zone(domain: Domain, *, panel_host: str) -> Zone:
    """What `domain` should publish now, with the verdicts of its latest done check."""
    identity = Identity.of(MailHost.current())
    keys = dkim_keys.expected_keys([domain.pk]).get(domain.pk, [])
    records, notes = records_for(
        domain.name, identity, [(k.selector, k.algorithm, k.public_key) for k in keys],
        client_setup.dns_records(domain.name, panel_host=panel_host))
    notes += client_setup.dns_warnings(panel_host=panel_host)
    run = latest_run(domain)
    silent = run.silent_resolver if run else ""
    # A check that no lookup of was answered knows nothing of any record.
    verdicts = {(r.check_name, r.subject): r.verdict
                for r in (run.results.all() if run and not silent else [])}
    return Zone(domain.name, tuple(with_verdicts(records, verdicts)), tuple(notes),
                checked=run is not None, silent_resolver=silent)


def alias_zone(alias: AliasDomain, *, panel_host: str) -> Zone:
    """What an alias domain should publish: it receives and announces like its target.

    No DKIM (the panel signs only for the domains themselves) and no host
    records (its target's list has them); the DNS check does not look at it.
    """
    records, notes = records_for(alias.name, Identity.of(MailHost.current()), [],
                                 client_setup.dns_records(alias.name, panel_host=panel_host),
                                 host_records=False)
    notes += client_setup.dns_warnings(panel_host=panel_host)
    return Zone(alias.name, tuple(records), tuple(notes))
