"""DKIM public keys and key records: parsing, normalising, measuring."""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
    load_pem_public_key,
)

from core.tags import BadTagList, parse_tags

ED25519_KEY_BYTES = 32
# Shorter RSA keys are accepted (some signers still have them) but warned about,
# when set and by the DNS check.
RSA_RECOMMENDED_BITS = 2048
SELECTOR_MAX = 63  # one DNS label's worth, and the column's size
PRIVATE_KEY_RE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
SELECTOR_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?"
                         r"(?:\.[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?)*$")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_PEM = re.compile(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", re.S)


class BadKey(ValueError):
    """A key or record that cannot be used; the message is one line for the admin."""


def key_bits(public_key: str, algorithm: str = "rsa") -> int:
    """The size of a base64 `p=` key; raises BadKey when it does not parse."""
    der = _decode(public_key)
    if algorithm == "ed25519":
        if len(der) != ED25519_KEY_BYTES:
            raise BadKey("an ed25519 key is 32 bytes")
        return 256
    if algorithm != "rsa":
        raise BadKey(f"unknown key type {algorithm!r}")
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError):
        raise BadKey("p= is not an RSA public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadKey("p= is not an RSA public key")
    return int(key.key_size)


def weak_key_warning(algorithm: str, bits: int) -> str:
    """One line when a key works but is shorter than recommended, else ""."""
    if algorithm == "rsa" and bits < RSA_RECOMMENDED_BITS:
        return (f"The RSA key has {bits} bits; {RSA_RECOMMENDED_BITS} bits is recommended "
                "(the DNS check warns until then).")
    return ""


def _decode(public_key: str) -> bytes:
    compact = re.sub(r"\s+", "", public_key)
    if not compact:
        raise BadKey("the key is empty (a revoked key)")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise BadKey("the key is not valid base64") from None


def valid_selector(selector: str) -> bool:
    return len(selector) <= SELECTOR_MAX and bool(SELECTOR_RE.match(selector))


def normalise(text: str) -> tuple[str, str]:
    """(algorithm, base64 key) from what an admin pastes.

    Accepts a bare base64 key, a PEM public key, a `v=DKIM1; k=...; p=...`
    record, or the zone-file line `rspamadm dkim_keygen` prints (quoted
    strings, parentheses). A bare key of 32 bytes can only be a raw ed25519
    key (an RSA key's DER is hundreds of bytes), and a PEM key says what it
    is, so the algorithm is never guessed.
    """
    if PRIVATE_KEY_RE.search(text):
        raise BadKey("that is a private key; give only the public key or the TXT record")
    pem = _PEM.search(text)
    if pem:
        return _from_pem(pem.group(0))
    quoted = _QUOTED.findall(text)
    if quoted:
        text = "".join(quoted)
    text = text.strip()
    if "=" in text.rstrip("=") and "p=" in text.replace(" ", ""):
        try:
            record = parse_tags(text)
        except BadTagList as error:
            raise BadKey(str(error)) from None
        algorithm = record.get("k", "rsa").lower() or "rsa"
        key = re.sub(r"\s+", "", record.get("p", ""))
    else:
        key = re.sub(r"\s+", "", text)
        algorithm = "ed25519" if len(_decode(key)) == ED25519_KEY_BYTES else "rsa"
    key_bits(key, algorithm)
    return algorithm, key


def _from_pem(pem: str) -> tuple[str, str]:
    try:
        key = load_pem_public_key(pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        raise BadKey("the PEM block is not a public key") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return "ed25519", base64.b64encode(raw).decode()
    if isinstance(key, rsa.RSAPublicKey):
        der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return "rsa", base64.b64encode(der).decode()
    raise BadKey("DKIM keys are RSA or ed25519")


def quoted_txt(value: str) -> tuple[str, int]:
    """A TXT value as zone-file strings (at most 255 bytes each), and how many there are.

    Split before escaping, so an escape is never cut in two.
    """
    chunks = [value[i:i + 250] for i in range(0, len(value), 250)] or [""]
    escaped = (c.replace("\\", "\\\\").replace('"', '\\"') for c in chunks)
    return " ".join(f'"{c}"' for c in escaped), len(chunks)


def txt_record(selector: str, domain: str, algorithm: str, public_key: str) -> str:
    """The zone-file line to publish; a long key in parentheses, one string per piece."""
    quoted, pieces = quoted_txt(f"v=DKIM1; k={algorithm}; p={public_key}")
    owner = f"{selector}._domainkey.{domain}."
    return f"{owner} IN TXT ( {quoted} )" if pieces > 1 else f"{owner} IN TXT {quoted}"


def record_value(algorithm: str, public_key: str) -> str:
    """The TXT value to publish; an empty key is the revoked form (`p=`)."""
    return f"v=DKIM1; k={algorithm}; p={public_key}"


def record_parts(selector: str, domain: str, algorithm: str, public_key: str
                 ) -> dict[str, str]:
    """The record as web DNS editors ask for it: host (relative and full), type, value."""
    return {"host": f"{selector}._domainkey", "fqdn": f"{selector}._domainkey.{domain}",
            "type": "TXT", "value": record_value(algorithm, public_key)}


def revoked_record(selector: str, domain: str, algorithm: str) -> str:
    """The zone line that revokes a key: the same name, an empty p=."""
    return txt_record(selector, domain, algorithm, "")
