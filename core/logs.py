"""What the logging configuration needs from core, importable before the apps load."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError

# MariaDB's numbers for a server that cannot be reached or went away (client 2xxx:
# refused, unknown host, gone away, lost; server: too many connections, shutting
# down, connection killed, idle disconnect).
_MARIADB_UNREACHABLE = frozenset({1040, 1053, 1927, 2001, 2002, 2003, 2004, 2005, 2006,
                                  2013, 2026, 2055, 4031})
# MariaDB: a lock wait given up, a deadlock victim; the request may simply be tried again.
_MARIADB_BUSY = frozenset({1205, 1213})
# SQLite says it in words: the file or its directory cannot be had.
_SQLITE_UNREACHABLE = ("unable to open database file", "disk i/o error")


def _code(error: BaseException) -> int | None:
    first = error.args[0] if error.args else None
    return first if isinstance(first, int) else None


def database_unreachable(error: BaseException) -> bool:
    """The database cannot be reached: not a bug, said in one line (core.outage).
    Other OperationalErrors (a missing column after a failed upgrade, a bad query)
    stay 500s with their traceback: hiding them would hide bugs."""
    if isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    code = _code(error)
    if code is not None:
        return code in _MARIADB_UNREACHABLE
    return any(words in str(error).lower() for words in _SQLITE_UNREACHABLE)


def database_busy(error: BaseException) -> bool:
    """A write that waited out the lock of another, long one (SQLite's one writer,
    MariaDB's lock wait or deadlock)."""
    if not isinstance(error, OperationalError):
        return False
    code = _code(error)
    if code is not None:
        return code in _MARIADB_BUSY
    return "database is locked" in str(error)


class NoTracebackForOutages(logging.Filter):
    """Django's request log line for a database outage without its traceback: the
    cause is the database's, said in one line (core.outage), not a bug to read."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and (database_unreachable(error) or database_busy(error)):
            record.exc_info = None
            record.exc_text = None
        return True
