"""Mailbox password hashes in the `{SCHEME}hash` form Dovecot verifies itself.

New hashes use the configured default scheme (BLF-CRYPT, bcrypt `$2y$`).
Hashes in any accepted scheme can be imported; a successful sign-in with an
older scheme (or a weaker bcrypt cost) is rehashed to the default.
A hash whose cost is beyond the MAILADMIN_MAX_* settings is refused, and
never run: one verification must not hold a worker for long.
Plaintext never appears in an exception or a log line from here.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from passlib.hash import argon2, bcrypt, md5_crypt, sha256_crypt, sha512_crypt


class TooCostly(ValidationError):
    """A hash whose parameters are beyond the MAILADMIN_MAX_* bounds."""


@dataclass(frozen=True)
class Scheme:
    name: str
    handler: Any
    importable_only: bool = False


SCHEMES: dict[str, Scheme] = {
    "BLF-CRYPT": Scheme("BLF-CRYPT", bcrypt),
    "SHA512-CRYPT": Scheme("SHA512-CRYPT", sha512_crypt),
    "SHA256-CRYPT": Scheme("SHA256-CRYPT", sha256_crypt),
    "ARGON2ID": Scheme("ARGON2ID", argon2),
    "ARGON2I": Scheme("ARGON2I", argon2),
    # Old PostfixAdmin installs store md5crypt; accepted so they can move in,
    # never produced.
    "MD5-CRYPT": Scheme("MD5-CRYPT", md5_crypt, importable_only=True),
}

_PREFIX = re.compile(r"^\{([A-Z0-9-]+)\}(.*)$", re.DOTALL)
# Which scheme a bare crypt string (no {SCHEME} prefix) belongs to.
_BARE = [
    ("$2y$", "BLF-CRYPT"), ("$2b$", "BLF-CRYPT"), ("$2a$", "BLF-CRYPT"),
    ("$6$", "SHA512-CRYPT"), ("$5$", "SHA256-CRYPT"),
    ("$argon2id$", "ARGON2ID"), ("$argon2i$", "ARGON2I"), ("$1$", "MD5-CRYPT"),
]
_ARGON_TYPE = {"ARGON2ID": "$argon2id$", "ARGON2I": "$argon2i$"}


def default_scheme() -> str:
    scheme = settings.MAILADMIN_PASSWORD_SCHEME
    if scheme not in SCHEMES or SCHEMES[scheme].importable_only:
        raise ImproperlyConfigured(f"MAILADMIN_PASSWORD_SCHEME {scheme!r} cannot be used")
    return scheme


def _hasher(scheme: str) -> Any:
    if scheme == "BLF-CRYPT":
        return bcrypt.using(ident="2y", rounds=settings.MAILADMIN_BCRYPT_ROUNDS)
    if scheme == "ARGON2ID":
        return argon2.using(type="ID")
    if scheme == "ARGON2I":
        return argon2.using(type="I")
    return SCHEMES[scheme].handler


def hash_password(password: str, scheme: str | None = None) -> str:
    scheme = scheme or default_scheme()
    if scheme not in SCHEMES or SCHEMES[scheme].importable_only:
        raise ValidationError(f"{scheme} cannot be used for new passwords.")
    _check_plaintext(password, scheme)
    return f"{{{scheme}}}{_hasher(scheme).hash(password)}"


def can_hash(password: str, scheme: str | None = None) -> bool:
    """Whether hash_password would take this password (bcrypt stops at 72 bytes)."""
    try:
        _check_plaintext(password, scheme or default_scheme())
    except ValidationError:
        return False
    return True


def _check_plaintext(password: str, scheme: str) -> None:
    if not isinstance(password, str) or password == "":
        raise ValidationError("A password is required.")
    if "\x00" in password:
        raise ValidationError("A password cannot contain a NUL character.")
    try:
        encoded = password.encode()
    except UnicodeEncodeError:
        raise ValidationError("A password must be valid UTF-8 text.") from None
    if scheme == "BLF-CRYPT" and len(encoded) > 72:
        # bcrypt ignores everything past 72 bytes; refuse rather than pretend.
        raise ValidationError("A password can have at most 72 bytes with BLF-CRYPT.")


def split_hash(stored: str) -> tuple[str, str]:
    """(scheme, crypt string) of a stored or imported hash, or ValidationError."""
    scheme, value, parsed = _parse(stored)
    problem = _cost_problem(scheme, parsed)
    if problem:
        raise TooCostly(problem)
    return scheme, value


def _parse(stored: str) -> tuple[str, str, Any]:
    """(scheme, crypt string, passlib's parsed form), whatever its cost."""
    if not isinstance(stored, str):
        raise ValidationError("A password hash must be text.")
    match = _PREFIX.match(stored.strip())
    if match:
        scheme, value = match.group(1), match.group(2)
    else:
        value = stored.strip()
        scheme = next((s for prefix, s in _BARE if value.startswith(prefix)), "")
    if scheme not in SCHEMES:
        raise ValidationError(
            "Unsupported password hash; accepted schemes: " + ", ".join(SCHEMES) + "."
        )
    if scheme in _ARGON_TYPE and not value.startswith(_ARGON_TYPE[scheme]):
        raise ValidationError(f"The hash is not a valid {scheme} hash.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            parsed = SCHEMES[scheme].handler.from_string(value)
    except (ValueError, TypeError, Warning):
        raise ValidationError(f"The hash is not a valid {scheme} hash.") from None
    if not parsed.checksum:
        # A salt with no digest would import fine and then never verify.
        raise ValidationError(f"The {scheme} hash has no digest.")
    return scheme, value, parsed


def _cost_problem(scheme: str, parsed: Any) -> str | None:
    """Why verifying this hash would cost too much; None when it is within the bounds.

    Read from the hash's parameters, never by running it: a planted
    `$2y$31$` would hold whoever verifies it (a sign-in) for days.
    """
    over = _over_the_bounds(scheme, parsed)
    if not over:
        return None
    what, value, bound, setting = over[0]
    shown = (f"{value} rounds; at most {bound}" if what == "rounds"
             else f"{_shown_cost(what, value)}; at most {bound}")
    return (f"The {scheme} hash has {shown} is accepted ({setting}): it would take "
            "too long to verify.")


def _over_the_bounds(scheme: str, parsed: Any) -> list[tuple[str, int, int, str]]:
    """(what, value, bound, setting) of each parameter of the hash beyond its bound."""
    limits: list[tuple[str, int, int, str]] = []
    if scheme == "BLF-CRYPT":
        limits.append(("cost", parsed.rounds, settings.MAILADMIN_MAX_BCRYPT_COST,
                       "MAILADMIN_MAX_BCRYPT_COST"))
    elif scheme in ("SHA512-CRYPT", "SHA256-CRYPT"):
        limits.append(("rounds", parsed.rounds, settings.MAILADMIN_MAX_SHA_CRYPT_ROUNDS,
                       "MAILADMIN_MAX_SHA_CRYPT_ROUNDS"))
    elif scheme in _ARGON_TYPE:
        limits += [
            ("memory", parsed.memory_cost, settings.MAILADMIN_MAX_ARGON2_MEMORY_KIB,
             "MAILADMIN_MAX_ARGON2_MEMORY_KIB"),
            ("time cost", parsed.rounds, settings.MAILADMIN_MAX_ARGON2_TIME_COST,
             "MAILADMIN_MAX_ARGON2_TIME_COST"),
            ("parallelism", parsed.parallelism, settings.MAILADMIN_MAX_ARGON2_PARALLELISM,
             "MAILADMIN_MAX_ARGON2_PARALLELISM"),
        ]
    return [limit for limit in limits if limit[1] > limit[2]]


def costly_hash(stored: str) -> tuple[str, str] | None:
    """(scheme, what is over the bounds) of a stored hash, e.g. ("BLF-CRYPT", "cost 31").

    None when the hash is within the bounds or unreadable. For hashes stored
    before the bounds, or adopted: Dovecot still verifies them on IMAP and
    SMTP AUTH, so their passwords need a reset.
    """
    try:
        scheme, _value, parsed = _parse(stored)
    except ValidationError:
        return None
    over = _over_the_bounds(scheme, parsed)
    if not over:
        return None
    return scheme, ", ".join(_shown_cost(what, value) for what, value, _b, _s in over)


def _shown_cost(what: str, value: int) -> str:
    return f"{what} {value}{' KiB' if what == 'memory' else ''}"


def cost_problem(stored: str) -> str | None:
    """Why a stored hash is too costly to verify, or None (also for unreadable hashes)."""
    try:
        scheme, _value, parsed = _parse(stored)
    except ValidationError:
        return None
    return _cost_problem(scheme, parsed)


def normalize_hash(stored: str) -> str:
    """An imported hash in canonical `{SCHEME}crypt` form, validated."""
    scheme, value = split_hash(stored)
    return f"{{{scheme}}}{value}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, value = split_hash(stored)
    except ValidationError:
        return False
    if not isinstance(password, str) or not password:
        return False
    try:
        return bool(SCHEMES[scheme].handler.verify(password, value))
    except (ValueError, TypeError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        scheme, value = split_hash(stored)
    except ValidationError:
        return True
    if scheme != default_scheme():
        return True
    if scheme == "BLF-CRYPT":
        return bool(bcrypt.from_string(value).rounds != settings.MAILADMIN_BCRYPT_ROUNDS)
    return False
