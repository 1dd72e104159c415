"""What a check yields, and what it is told about our mail host."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings

from dnscheck.models import Verdict
from mailhost.validators import is_public_host_name

if TYPE_CHECKING:
    from mailhost.models import MailHost


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


SET_HOSTNAME = "Set the public name of this server (or its MX names) on the Mail host page"


@dataclass(frozen=True)
class Identity:
    """The public face of the mail host: what the checks compare DNS with."""

    hosts: tuple[str, ...]  # MX targets; the first is the name PTR records should give
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()
    ip_zones: tuple[str, ...] = ()  # DNSBLs for our addresses
    domain_zones: tuple[str, ...] = ()  # block lists for domain names
    # Configured host names left out of `hosts` because they are not public.
    private_hosts: tuple[str, ...] = ()

    @property
    def addresses(self) -> tuple[str, ...]:
        return self.ipv4 + self.ipv6

    @property
    def hostname(self) -> str:
        """The name PTR records should give; "" when no public name is configured."""
        return self.hosts[0] if self.hosts else ""

    def unset_hostname(self, to_see: str) -> str:
        """The reason of a check that needs this host's public name when none is set."""
        shown = ", ".join(repr(h) for h in self.private_hosts)
        why = f" ({shown} is not a public DNS name)" if shown else ""
        return f"{SET_HOSTNAME} to see {to_see}{why}."

    @classmethod
    def of(cls, host: MailHost) -> Identity:
        """The public face of `host`; the block lists to ask are the checks' own settings."""
        configured = host.mx_names
        return cls(
            hosts=tuple(h for h in configured if is_public_host_name(h)),
            private_hosts=tuple(h for h in configured if not is_public_host_name(h)),
            ipv4=tuple(host.public_ipv4),
            ipv6=tuple(host.public_ipv6),
            ip_zones=tuple(z.lower().strip(".") for z in settings.MAILADMIN_DNSBL_ZONES),
            domain_zones=tuple(
                z.lower().strip(".") for z in settings.MAILADMIN_DNSBL_DOMAIN_ZONES),
        )


@dataclass(frozen=True)
class DkimExpected:
    """A DKIM key the domain should publish."""

    selector: str
    public_key: str  # base64, as after p=
    algorithm: str = "rsa"
    # Its lifecycle state (dkim.models.DkimKey.State): what a missing record means.
    state: str = "active"
    # A pending key made more than MAILADMIN_DKIM_STALL_DAYS ago: its rotation
    # waits for a record nobody published (0: not stalled).
    stalled_days: int = 0


@dataclass(frozen=True)
class Target:
    """A domain to check, with what the database knows about it."""

    name: str
    # Every DKIM key the domain should publish: the one it signs with (when
    # set) first, then any published alongside it (a key ahead of a rotation).
    dkim_keys: tuple[DkimExpected, ...] = ()
    # Each required local part ("postmaster", "abuse") and how it is served:
    # "mailbox", "alias", "catch-all" or "" when nothing receives it.
    required: dict[str, str] = field(default_factory=dict)
