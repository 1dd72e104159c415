"""Passwords an import job must carry until a worker hashes them, sealed.

A CSV import's plaintext (typed in the file, or generated for an empty
cell) waits in the job's `rows` between the preview and the worker, and a
generated set waits for its one download. Both are sealed with Fernet
(AES-128-CBC + HMAC-SHA256) under a key derived from SECRET_KEY, so the
database, its backups and the broker (which carries only the job id) never
hold a readable password. The key is not stored anywhere: changing
SECRET_KEY makes the sealed values of open jobs unreadable, and such a job
fails with "nothing was imported".
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from django.utils.crypto import salted_hmac

# A different salt than any other use of SECRET_KEY, so this key is its own.
_SALT = "mailadmin.domains.sealed.import-passwords"


class Unreadable(Exception):
    """A sealed value that this SECRET_KEY did not seal (or that was altered)."""


def _fernet() -> Fernet:
    key = salted_hmac(_SALT, "fernet-key", algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode("ascii")


def unseal(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, ValueError) as exc:
        raise Unreadable from exc
