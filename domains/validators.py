"""Normalising and validating what users type: domain names, addresses, sizes.

Everything is stored lowercase ASCII: Postfix folds lookup keys to lowercase
and SQLite compares case-sensitively, so a mixed-case row would never match.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal

import idna
from django.core.exceptions import ValidationError

# The characters are the mail host's; MAILBOX_SPECIALS is re-exported for readers here.
from mailhost.addresses import (  # noqa: F401
    LOCAL_PART_SPECIALS,
    MAILBOX_SPECIALS,
    NOT_A_MAILBOX,
    NOT_HOSTED,
)

DOMAIN_MAX = 253
LOCAL_MAX = 64
ADDRESS_MAX = 254

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_ATOM = "[a-z0-9" + re.escape(LOCAL_PART_SPECIALS) + "]+"
_LOCAL = re.compile(rf"{_ATOM}(\.{_ATOM})*")
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


@functools.lru_cache(maxsize=4096)
def normalize_domain(raw: str) -> str:
    """Lowercase ASCII (punycode) form of a domain name, or ValidationError.

    Cached: imports normalise the same domain for every row, and IDNA
    encoding is the costly part. Errors are not cached.
    """
    if not isinstance(raw, str):
        raise ValidationError("A domain name is required.")
    text = raw.strip().rstrip(".")
    if not text:
        raise ValidationError("A domain name is required.")
    if "\x00" in text or any(c.isspace() for c in text):
        raise ValidationError(f"{_shown(raw)} is not a valid domain name.")
    if len(text) > DOMAIN_MAX * 4 or (text.isascii() and len(text) > DOMAIN_MAX):
        raise ValidationError(
            f"{_shown(raw)} is {len(text)} characters long; a domain name has at most "
            f"{DOMAIN_MAX}."
        )
    try:
        name = idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError:
        raise ValidationError(f"{_shown(raw)} is not a valid domain name.") from None
    name = name.lower()
    if len(name) > DOMAIN_MAX:
        raise ValidationError(
            f"{_shown(raw)} is {len(name)} characters long; a domain name has at most "
            f"{DOMAIN_MAX}."
        )
    labels = name.split(".")
    if len(labels) < 2:
        raise ValidationError(f"{_shown(raw)} needs at least one dot (example.org).")
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise ValidationError(f"{_shown(raw)} is not a valid domain name.")
    if labels[-1].isdigit():
        raise ValidationError(f"{_shown(raw)} is an address, not a domain name.")
    return name


def split_address(raw: str, *, allow_catchall: bool = False,
                  shown_specials: str = LOCAL_PART_SPECIALS) -> tuple[str, str]:
    """(local part, domain) of a normalised address; local is '' for `@domain`.

    `shown_specials`: the characters a refusal names as accepted, where the
    caller refuses some of LOCAL_PART_SPECIALS itself.
    """
    if not isinstance(raw, str) or "@" not in raw:
        raise ValidationError(f"{_shown(raw)} is not a mail address (local@domain).")
    text = raw.strip()
    if any(c.isspace() or c == "\x00" for c in text):
        raise ValidationError(
            f"{_shown(raw)} is not a valid address: it contains spaces or control characters."
        )
    local, _, domain_part = text.rpartition("@")
    domain = normalize_domain(domain_part)
    if not local.isascii():
        raise ValidationError(
            f"{_shown(raw)} has non-ASCII characters before the @; they are not supported."
        )
    local = local.lower()
    if local == "":
        if allow_catchall:
            return "", domain
        raise ValidationError(f"{_shown(raw)} has no local part.")
    if len(local) > LOCAL_MAX:
        raise ValidationError(
            f"The part before @ in {_shown(raw)} is {len(local)} characters; at most "
            f"{LOCAL_MAX} are allowed."
        )
    if not _LOCAL.fullmatch(local):
        raise ValidationError(
            f"{_shown(raw)} is not a valid address: use letters, digits, dots and "
            f"{' '.join(shown_specials)} before the @ (no spaces, no leading, trailing or "
            "double dots)."
        )
    if len(local) + 1 + len(domain) > ADDRESS_MAX:
        raise ValidationError(f"{_shown(raw)} is longer than {ADDRESS_MAX} characters.")
    return local, domain


def domain_of(address: str) -> str:
    """The domain of a normalised address (or of a catch-all `@domain`)."""
    return address.rsplit("@", 1)[1]


def normalize_address(raw: str, *, allow_catchall: bool = False) -> str:
    local, domain = split_address(raw, allow_catchall=allow_catchall)
    return f"{local}@{domain}"


def normalize_hosted_address(raw: str, *, mailbox: bool, allow_catchall: bool = False) -> str:
    """normalize_address for an address of this server (a mailbox, an alias
    source), refusing characters Postfix or Dovecot cannot serve in it."""
    refused = {**NOT_HOSTED, **(NOT_A_MAILBOX if mailbox else {})}
    local, domain = split_address(
        raw, allow_catchall=allow_catchall,
        shown_specials="".join(c for c in LOCAL_PART_SPECIALS if c not in refused))
    for char, why in refused.items():
        if char in local:
            what = "a mailbox" if mailbox else "an address of this server"
            raise ValidationError(f"{_shown(raw)} cannot be {what}: {why}.")
    return f"{local}@{domain}"


def parse_size(raw: str | int) -> int:
    """Bytes from `0`, `512M`, `10G`, `1.5GiB` (binary units, as Dovecot reads them)."""
    if isinstance(raw, int):
        if raw < 0:
            raise ValidationError("A size cannot be negative.")
        return raw
    match = _SIZE.fullmatch(raw or "") if isinstance(raw, str) else None
    if not match or len(raw) > 40:
        raise ValidationError(f"{_shown(raw)} is not a size; write e.g. 0, 500M, 2G.")
    number, unit = match.groups()
    # Decimal, not float: exact for byte counts, and no overflow to inf.
    value = int(Decimal(number) * _UNITS[unit.lower()])
    if value >= 2**63:
        raise ValidationError(f"{_shown(raw)} is too large.")
    return value


def format_limit(value: int) -> str:
    """A quota limit: 0 is how the tables spell "no limit"."""
    return "unlimited" if value == 0 else format_size(value)


def format_size(value: int) -> str:
    """An amount of bytes, 0 included (an allocated total of 0 is nothing, not unlimited)."""
    for unit in ("T", "G", "M", "K"):
        factor = _UNITS[unit.lower()]
        if value >= factor and value % factor == 0:
            return f"{value // factor}{unit}"
    return f"{value}B"


def _shown(raw: object) -> str:
    """A user's input quoted for a message, cut short and with controls escaped."""
    text = repr(raw if isinstance(raw, str) else str(raw))
    return text if len(text) <= 80 else text[:77] + "...'"
