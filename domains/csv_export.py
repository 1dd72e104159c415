"""CSV export of a domain's mailboxes and aliases.

Export streams the rows in keyset-paged chunks (one indexed range query per
EXPORT_CHUNK rows, in creation order), so 200,000 mailboxes use the memory of
one chunk on every backend. (QuerySet.iterator() would be one query, but
mysqlclient buffers the whole result set client-side, so on MariaDB it is
not flat.)

Spreadsheet formulas (OWASP "CSV injection"): every exported cell that starts
with = + - @ (or a tab or carriage return) gets a leading apostrophe, which
spreadsheets take as "this is text". Addresses need it too: the `@domain`
catch-all, and local parts may begin with = + -. An apostrophe is itself a
legal local-part character, so a cell that already starts with apostrophes
followed by one of those characters gets one more; the import
(domains.csv_io) takes exactly one off again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.db.models import QuerySet

from domains.models import Alias, Domain, Mailbox

EXPORT_CHUNK = 2000
MAILBOX_EXPORT_COLUMNS = ("email", "name", "quota", "active", "password_hash")
ALIAS_EXPORT_COLUMNS = ("source", "destinations", "active")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")



def neutralise(value: str) -> str:
    """A cell a spreadsheet will show as text, never run as a formula.

    Apostrophes already in front of a formula character get one more, so
    unneutralise() can tell a stored `'=x` from a neutralised `=x`.
    """
    return "'" + value if value.lstrip("'").startswith(FORMULA_START) else value


def unneutralise(value: str) -> str:
    """The value neutralise() was given (an import reads back its own exports)."""
    if value.startswith("'") and value.lstrip("'").startswith(FORMULA_START):
        return value[1:]
    return value


def mailbox_csv(domain: Domain, chunk: int | None = None) -> Iterator[str]:
    """The domain's mailboxes as CSV text, one piece per chunk of rows."""
    rows = _keyset(Mailbox.objects.filter(domain=domain),
                   ("email", "name", "quota", "active", "password"), chunk or EXPORT_CHUNK)
    return _csv_pieces(MAILBOX_EXPORT_COLUMNS, rows, lambda r: [
        neutralise(r[1]), neutralise(r[2]), str(r[3]), _flag(r[4]), neutralise(r[5])])


def alias_csv(domain: Domain, chunk: int | None = None) -> Iterator[str]:
    rows = _keyset(Alias.objects.filter(domain=domain),
                   ("source", "destinations", "active"), chunk or EXPORT_CHUNK)
    return _csv_pieces(ALIAS_EXPORT_COLUMNS, rows,
                       lambda r: [neutralise(r[1]), neutralise(r[2]), _flag(r[3])])


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _keyset(queryset: QuerySet[Any], fields: Sequence[str], chunk: int
            ) -> Iterator[list[tuple[Any, ...]]]:
    """Lists of at most `chunk` rows (pk, *fields), in primary key order.

    By primary key, not by address: the domain_id index holds the primary
    key (SQLite rowid, InnoDB clustered key), so each page is a range read
    of that index instead of a sort of the whole domain. Each query asks for
    one row more than it keeps, so a domain of exactly `chunk` rows is one
    query, not two.
    """
    last = None
    while True:
        page = queryset if last is None else queryset.filter(pk__gt=last)
        rows = list(page.order_by("pk").values_list("pk", *fields)[:chunk + 1])
        if rows[:chunk]:
            yield rows[:chunk]
        if len(rows) <= chunk:
            return
        last = rows[chunk - 1][0]


def _csv_pieces(header: Sequence[str], chunks: Iterator[list[tuple[Any, ...]]],
                cells: Callable[[tuple[Any, ...]], list[str]]) -> Iterator[str]:
    buffer = io.StringIO()
    # RFC 4180: CRLF line ends, fields quoted when they hold a comma, quote or line end.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    yield buffer.getvalue()
    for rows in chunks:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(cells(row) for row in rows)
        yield buffer.getvalue()
