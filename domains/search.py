"""Searches as index ranges, on SQLite and MariaDB alike.

Addresses and domain names are stored lower case ASCII (IDN as punycode), so a
typed term is normalised the same way and matched as a prefix through the
`prefix` lookup. Django's `startswith` cannot use the index on either
backend: SQLite's LIKE ignores case while the index is in binary order, and
MariaDB's LIKE BINARY compares in another collation than the index's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import idna
from django.db.models import CharField, Lookup, Transform

if TYPE_CHECKING:
    from django.db.models.sql.compiler import SQLCompiler, _AsSqlType

# Sorts after every character in SQLite's binary (code point) order.
_HIGHEST = "\U0010ffff"


@CharField.register_lookup
class Prefix(Lookup):
    """`column starts with value`, compared the way the column's index is ordered."""

    lookup_name = "prefix"
    prepare_rhs = False

    def as_sql(self, compiler: SQLCompiler, connection: Any) -> _AsSqlType:
        # A half-open range, the one form SQLite's planner turns into an index
        # search; no LIKE, so `_` and `%` in the value are plain characters.
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return (f"({lhs} >= %s AND {lhs} < %s)",
                (*lhs_params, self.rhs, *lhs_params, self.rhs + _HIGHEST))

    def as_mysql(self, compiler: SQLCompiler, connection: Any) -> _AsSqlType:
        # LIKE in the column's own collation: MariaDB derives the range from
        # the collation, which no fixed upper bound does for every character.
        lhs, lhs_params = self.process_lhs(compiler, connection)
        pattern = connection.ops.prep_for_like_query(self.rhs) + "%"
        return f"{lhs} LIKE %s", (*lhs_params, pattern)


@CharField.register_lookup
class Folded(Transform):
    """A column compared without case, in the form its index holds.

    SQLite: `LOWER(column)`, served by an index on that expression (ASCII
    letters only, as SQLite's LOWER). MariaDB: the column itself, whose
    case-insensitive collation already folds case and whose plain index
    serves it (MariaDB has no indexes on expressions).
    """

    lookup_name = "folded"
    function = "LOWER"

    def as_mysql(self, compiler: SQLCompiler, connection: Any,
                 **extra_context: Any) -> _AsSqlType:
        return compiler.compile(self.lhs)


def domain_term(typed: str) -> str:
    """A typed domain name (or the start of one) in its stored form.

    Each label is mapped as IDNA does (UTS 46) and a non-ASCII label becomes
    punycode, so `münchen` finds `xn--mnchen-3ya.de`. Punycode changes as a
    label grows, so a non-ASCII label matches once it is typed whole; a
    label IDNA refuses is kept as typed and matches nothing.
    """
    text = typed.strip().lower()
    if text.isascii():
        return text
    try:
        text = idna.uts46_remap(text, std3_rules=False, transitional=False)
    except idna.IDNAError:
        return text
    labels = []
    for label in text.split("."):
        try:
            labels.append(label if label.isascii() else idna.alabel(label).decode())
        except idna.IDNAError:
            labels.append(label)
    return ".".join(labels)


def name_term(typed: str) -> str:
    """A typed display name as `Folded` compares it: ASCII letters lower case.

    SQLite's LOWER folds ASCII only, so `Émile` is kept as typed (MariaDB's
    collation matches it either way).
    """
    return "".join(c.lower() if c.isascii() else c for c in typed.strip())


def address_term(typed: str) -> str:
    """A typed address (or the start of one) in its stored form: lower case, IDN domain."""
    local, at, domain = typed.strip().lower().partition("@")
    return f"{local}{at}{domain_term(domain)}" if at else local
