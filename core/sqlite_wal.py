"""The panel's SQLite file in WAL mode, readable by the mail daemons at all times.

In SQLite's default rollback-journal mode a commit locks readers out: Postfix's
`sqlite:` maps set no busy timeout, so a lookup that met a long panel write
failed ("database is locked", a 451 for incoming mail) and Dovecot's SQL
passdb refused logins. In WAL mode readers never wait for a writer: they
read the last committed state while a write of any length is under way.

WAL readers need the `-wal` and `-shm` files beside the database. The daemons
only read (the directory and the files are 750/640 in MAILADMIN_DATA_GROUP),
so they cannot create those files; SQLite can read a WAL database through
read-only `-wal` and `-shm` files (3.22 and later) as long as both exist. But
SQLite deletes both when the last read-write connection closes, which the
panel does at the end of every request: the next daemon process to open the
database would then fail ("unable to open database file"). So every panel
connection sets SQLITE_FCNTL_PERSIST_WAL: the files stay, and the last close
still checkpoints and, with journal_size_limit, truncates the `-wal` to
nothing (a daemon reading with no panel connection open reads the whole
`-wal` on each lookup, so it must stay small).

Python 3.11's sqlite3 has no file_control: the flag is set through the SQLite
library the sqlite3 module itself uses, on the connection's handle, checked
by asking SQLite for the connection's file name first.
"""

from __future__ import annotations

import _sqlite3
import ctypes
import logging
import os
import sqlite3
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

SQLITE_FCNTL_PERSIST_WAL = 10
# What a `-wal` is cut back to after a checkpoint; beyond it, a close checkpoints
# and truncates it (shrink). 4 MiB is SQLite's autocheckpoint size (1,000
# pages) with room to spare.
WAL_SIZE_LIMIT = 4 * 1024 * 1024
SHRINK_WAIT_MS = 1000
# The handle is the first field after the object header in CPython's
# pysqlite_Connection, from 3.8 to 3.13 at least; newer versions must be checked.
_HANDLE_LAYOUT_KNOWN = (3, 8) <= sys.version_info[:2] <= (3, 13)


def _library() -> ctypes.CDLL:
    # The sqlite3 module's own shared object: its symbols resolve to the very
    # SQLite library (and copy) that made the connection.
    library = ctypes.CDLL(_sqlite3.__file__)
    library.sqlite3_db_filename.restype = ctypes.c_char_p
    library.sqlite3_db_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    library.sqlite3_file_control.restype = ctypes.c_int
    library.sqlite3_file_control.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                             ctypes.c_void_p]
    return library


_LIBRARY = _library()


def _handle(connection: sqlite3.Connection, path: Path) -> int | None:
    """The connection's sqlite3* handle, or None when it cannot be confirmed as this file's."""
    if not _HANDLE_LAYOUT_KNOWN:
        return None
    handle = ctypes.c_void_p.from_address(id(connection) + object.__basicsize__).value
    if not handle:
        return None
    name = _LIBRARY.sqlite3_db_filename(handle, b"main")
    if name is None or os.path.realpath(os.fsdecode(name)) != os.path.realpath(path):
        return None
    return handle


def use_wal(connection: sqlite3.Connection, path: Path) -> bool:
    """WAL mode with persistent `-wal`/`-shm` files for this connection; False if not possible.

    `path` is the database file the connection opened (the check on the handle).
    """
    mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    handle = _handle(connection, path)
    if mode != "wal" or handle is None:
        logger.warning(
            "%s: the SQLite database could not be kept in WAL mode with its -wal and -shm "
            "files (journal mode %s, Python %s); the mail daemons' lookups may fail while "
            "the panel writes", path, mode, sys.version.split()[0])
        return False
    persist = ctypes.c_int(1)
    if _LIBRARY.sqlite3_file_control(handle, b"main", SQLITE_FCNTL_PERSIST_WAL,
                                     ctypes.byref(persist)) != 0:
        logger.warning("%s: SQLite refused to keep the -wal and -shm files", path)
        return False
    return True


def shrink(connection: sqlite3.Connection, path: Path) -> None:
    """Checkpoint and empty a `-wal` grown past WAL_SIZE_LIMIT (after a big write).

    A daemon that opens the database while no panel connection is open reads
    the whole `-wal` on each lookup. When it cannot be done at once (another
    writer, readers that do not let go) it is left for a later close; the
    next write cuts the `-wal` back to WAL_SIZE_LIMIT in any case.
    """
    wal = path.with_name(path.name + "-wal")
    try:
        if wal.stat().st_size <= WAL_SIZE_LIMIT or connection.in_transaction:
            return
    except FileNotFoundError:
        return
    try:
        # A short wait for the daemons' reads in progress (milliseconds each):
        # this runs as the request that made the big write ends.
        connection.execute(f"PRAGMA busy_timeout={SHRINK_WAIT_MS}")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.Error as error:
        logger.info("%s: checkpoint left for later: %s", wal, error)


def prepare(path: Path, timeout: float = 30) -> None:
    """Put an existing database file in WAL mode and make its `-wal`/`-shm` files.

    Run on every start (core.env.private_data), so the files the daemons need
    exist before any of them looks, and come back after another SQLite client
    (the sqlite3 shell) removed them on its last close. Nothing is opened
    when they are already there.
    """
    wal, shm = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))
    if wal.exists() and shm.exists() and _header_says_wal(path):
        return
    connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        if use_wal(connection, path):
            # The first read opens the WAL, which makes both files.
            connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
    finally:
        connection.close()


def _header_says_wal(path: Path) -> bool:
    """Bytes 18 and 19 of a SQLite file are 2 in WAL mode (1: rollback journal)."""
    with open(path, "rb") as handle:
        header = handle.read(20)
    return len(header) == 20 and header[18:20] == b"\x02\x02"
