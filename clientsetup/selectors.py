"""The settings a mail program needs, read from the mail host and the daemons' settings.

Nothing here depends on who asks or on which mailbox: the public endpoints
answer every address of a served domain alike, so they cannot tell whether
a mailbox exists.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from django.conf import settings

from domains.models import AliasDomain, Domain
from mailhost.models import MailHost
from mailhost.validators import is_public_host_name, is_reachable_address

# RFC 5321's longest path; anything longer is no address of ours.
ADDRESS_MAX = 254

# Postfix master.cf service names the panel's settings may use instead of a port.
_KNOWN_SERVICES = {"submission": 587, "submissions": 465, "smtps": 465, "imap": 143,
                   "imap2": 143, "imaps": 993}


@dataclass(frozen=True)
class Server:
    protocol: str  # "imap" or "smtp"
    hostname: str
    port: int
    # Thunderbird's socketType: "SSL" (TLS from the first byte) or "STARTTLS".
    security: str

    @property
    def security_label(self) -> str:
        return "SSL/TLS" if self.security == "SSL" else "STARTTLS"


@dataclass(frozen=True)
class ClientSettings:
    hostname: str
    incoming: tuple[Server, ...]  # best first
    outgoing: tuple[Server, ...]

    @property
    def is_public(self) -> bool:
        """Whether the servers' name is one to give out: not the embedded default's
        machine name (often `localhost`), which a mail program elsewhere cannot reach."""
        return is_public_host_name(self.hostname)


# Shown where a page would otherwise give out the embedded default's machine name.
SET_MAIL_HOST_FIRST = ("Set the mail host name first (Mail host page): until then no server "
                       "name is given to mail programs.")


def listen_port(value: str, default: int) -> int:
    """The port of a master.cf/Dovecot listen value: `587`, `host:587`, `submission`."""
    port = value.strip().rpartition(":")[2].strip("[]")
    if port.isdigit() and 0 < int(port) < 65536:
        return int(port)
    if port in _KNOWN_SERVICES:
        return _KNOWN_SERVICES[port]
    try:
        return socket.getservbyname(port, "tcp")
    except OSError:
        return default


def client_settings() -> ClientSettings:
    """Server names, ports and security as the rendered configuration serves them.

    Submission is the one master.cf service the panel renders with a login
    (STARTTLS required, smtpd_tls_security_level=encrypt); no port 465
    service is rendered, so none is advertised. IMAP with STARTTLS is on the
    port of MAILADMIN_IMAP_LISTEN; IMAPS (Dovecot's own TLS listener) on
    MAILADMIN_IMAPS_PORT unless that is 0.
    """
    hostname = MailHost.current().mail_hostname.lower().rstrip(".")
    incoming = []
    if settings.MAILADMIN_IMAPS_PORT:
        incoming.append(Server("imap", hostname, settings.MAILADMIN_IMAPS_PORT, "SSL"))
    incoming.append(Server("imap", hostname, listen_port(settings.MAILADMIN_IMAP_LISTEN, 143),
                           "STARTTLS"))
    outgoing = (Server("smtp", hostname,
                       listen_port(settings.MAILADMIN_SUBMISSION_LISTEN, 587), "STARTTLS"),)
    return ClientSettings(hostname=hostname, incoming=tuple(incoming), outgoing=outgoing)


def address_domain(address: str) -> str | None:
    """The domain part of a plausible address, lowercased; None for anything else."""
    if not address or len(address) > ADDRESS_MAX or address.count("@") != 1:
        return None
    local, domain = address.split("@")
    domain = domain.lower().rstrip(".")
    if not local or not domain or any(
            c.isspace() or not c.isprintable() or c in "<>\"'&" for c in address):
        return None
    return domain


def login_domain(domain: str) -> str | None:
    """The domain whose addresses sign in for mail to `domain`, if the panel serves it.

    An active domain signs in as itself; an active alias domain of an active
    domain as its target (the mailbox is user@target). Anything else: None.
    """
    if not domain or len(domain) > 253:
        return None
    if Domain.objects.filter(name=domain, active=True).exists():
        return domain
    alias = (AliasDomain.objects.select_related("target")
             .filter(name=domain, active=True, target__active=True).first())
    return alias.target.name if alias else None


def host_without_port(host: str) -> str:
    """`name`, `name:port`, `[v6]:port` or a bare IPv6 address, without port or brackets."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def panel_is_public(panel_host: str) -> bool:
    """Whether the name (or address) the panel was opened by can be a record's target."""
    host = host_without_port(panel_host)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return is_public_host_name(host)
    return is_reachable_address(host)


def _record_target(panel_host: str, name: str) -> str:
    """autoconfig/autodiscover point at the panel: a CNAME to its name, or A/AAAA to its address."""
    host = host_without_port(panel_host)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"{name} 3600 IN CNAME {host.lower().rstrip('.')}."
    kind = "A" if address.version == 4 else "AAAA"
    return f"{name} 3600 IN {kind} {address}"


def dns_records(domain: str, *, panel_host: str) -> list[str]:
    """Zone lines that let mail programs find the servers of `domain` (RFC 6186) and
    the panel's autoconfig and autodiscover answers (`panel_host`: the panel's name).

    A line whose target would be a name no one else can reach (the embedded
    default's `localhost`, the panel opened on loopback) is left out;
    dns_warnings says why.
    """
    found = client_settings()
    origin = domain.lower().rstrip(".") + "."
    lines = []
    if found.is_public:
        target = found.hostname + "."
        submission = found.outgoing[0]
        imap = next(s for s in found.incoming if s.security == "STARTTLS")
        imaps = next((s for s in found.incoming if s.security == "SSL"), None)
        lines += [
            f"_submission._tcp.{origin} 3600 IN SRV 0 1 {submission.port} {target}",
            f"_imap._tcp.{origin} 3600 IN SRV 10 1 {imap.port} {target}",
            # RFC 6186: a target of "." says the service is not offered.
            (f"_imaps._tcp.{origin} 3600 IN SRV 0 1 {imaps.port} {target}" if imaps
             else f"_imaps._tcp.{origin} 3600 IN SRV 0 0 0 ."),
            f"_pop3._tcp.{origin} 3600 IN SRV 0 0 0 .",
            f"_pop3s._tcp.{origin} 3600 IN SRV 0 0 0 .",
        ]
    if panel_is_public(panel_host):
        lines += [_record_target(panel_host, f"autoconfig.{origin}"),
                  _record_target(panel_host, f"autodiscover.{origin}")]
    return lines


def dns_warnings(*, panel_host: str) -> list[str]:
    """Why dns_records left lines out: each a sentence saying what to do instead."""
    warnings = []
    if not client_settings().is_public:
        warnings.append("Set the mail host name first (Mail host page): until then no SRV "
                        "records name a server.")
    if not panel_is_public(panel_host):
        shown = host_without_port(panel_host)
        warnings.append(
            f"This page was opened as {shown}, which other machines cannot reach: the "
            "autoconfig and autodiscover records would point at it. Open the panel by its "
            "public name to see them.")
    return warnings
