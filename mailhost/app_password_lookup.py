"""The key Dovecot finds an app password's row by: a salted hash of the
whole typed password, so the second passdb's SQL query never carries a
password (Dovecot's debug log shows query text, MariaDB's process list and
general log too).

Dovecot 2.3 computes it in the query itself with its variable-hash modifier
`%{sha256;salt=SALT:password}`: hex(SHA-256(SALT + typed password)), one
round, lowercase (src/lib/var-expand.c, var_expand_hash; checked against
doveadm 2.3.19.1, see tests/apppasswords). The salt is taken as text after
var-expansion and ends the argument list, so it must hold no `%`, `,`, `:`
or `}`: hex. Dovecot hashes the SQL-escaped password; a token's characters
(apppasswords.models.ALPHABET) need no escaping, so that is the token itself.

The salt is derived from SECRET_KEY (its own label, like domains/sealed.py)
and lands only in the rendered root:dovecot 0640 SQL file: without it a
leaked table's lookups cannot be tested against guesses offline. Changing
SECRET_KEY changes the salt, so every app password stops working (README).
"""

from __future__ import annotations

import hashlib

from django.utils.crypto import salted_hmac

# A different label than any other use of SECRET_KEY, so this salt is its own.
_LABEL = "mailadmin.apppasswords.dovecot-lookup-salt"
LOOKUP_LENGTH = 64  # hex SHA-256


def lookup_salt() -> str:
    return salted_hmac(_LABEL, "v1", algorithm="sha256").hexdigest()


def lookup_value(token: str) -> str:
    """What Dovecot's `%{sha256;salt=...:password}` gives for `token`."""
    return hashlib.sha256((lookup_salt() + token).encode()).hexdigest()


def dovecot_lookup_expression() -> str:
    """The query's expression for the typed password's lookup value."""
    return f"%{{sha256;salt={lookup_salt()}:password}}"
