"""What a check yields, and what it is told about our mail host."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from dnscheck.models import Verdict


@dataclass(frozen=True)
class Finding:
    check: str  # "mx", "spf", ...
    subject: str  # what it looked at, when a check yields several results
    verdict: Verdict
    reason: str  # one line
    observed: str = ""
    expected: str = ""
    record: str = ""  # zone-file line(s) to publish, when the fix is a record

    @property
    def key(self) -> tuple[str, str]:
        return (self.check, self.subject)


@dataclass(frozen=True)
class Identity:
    """The public face of the mail host: what the checks compare DNS with."""

    hosts: tuple[str, ...]  # MX targets; the first is the name PTR records should give
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()
    ip_zones: tuple[str, ...] = ()  # DNSBLs for our addresses
    domain_zones: tuple[str, ...] = ()  # block lists for domain names

    @property
    def addresses(self) -> tuple[str, ...]:
        return self.ipv4 + self.ipv6

    @property
    def hostname(self) -> str:
        return self.hosts[0]

    @classmethod
    def from_settings(cls) -> Identity:
        return cls(
            hosts=tuple(settings.MAILADMIN_MX_HOSTS) or (settings.MAILADMIN_MAIL_HOSTNAME,),
            ipv4=tuple(settings.MAILADMIN_PUBLIC_IPV4),
            ipv6=tuple(settings.MAILADMIN_PUBLIC_IPV6),
            ip_zones=tuple(z.lower().strip(".") for z in settings.MAILADMIN_DNSBL_ZONES),
            domain_zones=tuple(
                z.lower().strip(".") for z in settings.MAILADMIN_DNSBL_DOMAIN_ZONES),
        )


@dataclass(frozen=True)
class Target:
    """A domain to check, with what the database knows about it."""

    name: str
    dkim_selector: str = ""
    dkim_key: str = ""  # base64, as after p=
    dkim_algorithm: str = "rsa"
    # Each required local part ("postmaster", "abuse") and how it is served:
    # "mailbox", "alias", "catch-all" or "" when nothing receives it.
    required: dict[str, str] = field(default_factory=dict)
