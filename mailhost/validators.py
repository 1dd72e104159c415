"""What a mail host's fields may hold: the rendered configs put them into SQL
strings and daemon settings, so anything that would need quoting is refused."""

from __future__ import annotations

import ipaddress
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured, ValidationError

from core.env import database_from_url

HOST_NAME_MAX = 253
ID_MAX = 2**32 - 2  # (uid_t)-1 means "no change" to chown
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE)
# Rendered inside a single-quoted SQL string and Dovecot settings.
_UNSAFE_IN_PATH = set("'\"\\%")


def validate_host_name(value: str) -> None:
    """A DNS name of this host. A bare machine name is allowed (the default is
    the machine's own name); the DNS checks say when it is not public."""
    if not value or len(value) > HOST_NAME_MAX or not all(
            _LABEL.fullmatch(label) for label in value.split(".")):
        raise ValidationError(f"{value!r} is not a host name.")


# Names that never resolve on the Internet (RFC 6761, RFC 6762, RFC 8375,
# ICANN's .internal; .lan, .home and .corp are never delegated): an MX or PTR
# record naming one would send mail nowhere. A fresh machine's own name is
# often under one (localhost, debian.lan, ip-10-0-0-5.ec2.internal). (.test is
# kept: the integration tests serve a zone of their own under it.)
PRIVATE_SUFFIXES = frozenset({"localhost", "localdomain", "local", "invalid", "internal",
                              "home.arpa", "lan", "home", "corp"})

# Addresses no other network routes to this host: RFC 1918, RFC 6598 (carrier-grade
# NAT), RFC 4193 (unique local IPv6). A cloud machine's own address is often one.
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))


def is_public_host_name(name: str) -> bool:
    """Whether `name` can be published as an MX target, PTR name or server to connect to.

    Not a bare machine name (no dot), an address, or a name under a suffix
    that never resolves publicly. The defaults fall back to the machine's
    name, which is often exactly that ("localhost").
    """
    name = name.lower().rstrip(".")
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        return False
    labels = name.split(".")
    private = any(".".join(labels[-n:]) in PRIVATE_SUFFIXES for n in (1, 2))
    return len(labels) > 1 and not private and not labels[-1].isdigit()


def is_reachable_address(value: str) -> bool:
    """Whether an address can be another machine's way to this one: not loopback,
    unspecified, link-local or private (documentation ranges pass: the tests use them)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified or address.is_link_local
                or any(address in network for network in PRIVATE_NETWORKS))


def validate_host_names(value: Any) -> None:
    if not isinstance(value, list):
        raise ValidationError("Host names are a list.")
    for name in value:
        validate_host_name(name)


def _validate_addresses(value: Any, version: int) -> None:
    if not isinstance(value, list):
        raise ValidationError("Addresses are a list.")
    for address in value:
        try:
            ok = ipaddress.ip_address(address).version == version
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValidationError(f"{address!r} is not an IPv{version} address.")


def validate_ipv4_list(value: Any) -> None:
    _validate_addresses(value, 4)


def validate_ipv6_list(value: Any) -> None:
    _validate_addresses(value, 6)


def validate_vmail_dir(value: str) -> None:
    if not PurePosixPath(value).is_absolute() or value.strip("/") == "":
        raise ValidationError("The Maildir root must be an absolute path below /.")
    if any(c.isspace() or c in _UNSAFE_IN_PATH or not c.isprintable() for c in value):
        raise ValidationError("The Maildir root cannot hold spaces, quotes, \\ or %.")


def validate_daemon_database(value: str) -> None:
    """Blank (the panel's own database) or a URL without a password: the
    password stays in MAILADMIN_DAEMON_DATABASE_URL, out of the database."""
    if not value:
        return
    try:
        if urlsplit(value).password is not None:
            raise ValidationError(
                "Leave the password out: it is read from MAILADMIN_DAEMON_DATABASE_URL.")
        entry = database_from_url(value)
    except (ImproperlyConfigured, ValueError):
        raise ValidationError(
            "Write sqlite:////path/to/file.sqlite3 or mysql://user@host:port/name.") from None
    # Dovecot's `connect =` line is split on spaces and has no quoting.
    if any(c.isspace() for c in str(entry.get("USER", "")) + str(entry["NAME"])):
        raise ValidationError("The database user and name cannot contain spaces.")
