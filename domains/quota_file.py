"""Dovecot's own SQLite file of quota usage, for a panel on SQLite.

The daemons may only read the panel's SQLite file (it holds every password
hash), and a writer needs the file and its directory writable (the rollback
journal), so Dovecot's dict process writes usage into a small file of its own
in a directory it owns, and the panel copies it into its `quota_usage` table
(services.sync_quota_usage; `manage.py quota_usage sync`, beat every few
minutes). On MariaDB none of this is used: Dovecot writes the panel's table.
"""

from __future__ import annotations

import os
import pwd
import sqlite3
from collections.abc import Iterator
from pathlib import Path

# The columns and key Dovecot's dict-sql map names (mailhost.render): its
# upsert needs the username to be the primary key, and it inserts one column at
# a time, so the other needs a default.
SCHEMA = ("CREATE TABLE IF NOT EXISTS quota_usage ("
          "username VARCHAR(254) NOT NULL PRIMARY KEY, "
          "bytes INTEGER NOT NULL DEFAULT 0, messages INTEGER NOT NULL DEFAULT 0)")
CHUNK = 2000
# What a row may hold to be copied: an address's length, a count the panel's
# BIGINT columns hold.
MAX_USERNAME = 254
MAX_COUNT = 2**63 - 1


def create(path: str | Path, *, owner: str) -> Path:
    """Make the file (and its directory) for Dovecot's dict process, owned by
    `owner` (Dovecot's internal user, `dovecot`) and readable by the panel.
    Safe to run again: an existing table and its rows stay."""
    file = Path(path)
    account = pwd.getpwnam(owner)
    file.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with sqlite3.connect(file) as db:
        db.execute(SCHEMA)
    db.close()
    for item in (file.parent, file):
        os.chown(item, account.pw_uid, account.pw_gid)
    # Usage figures, no secrets: the panel's user reads them without a shared group.
    file.chmod(0o644)
    return file


def read(path: str | Path) -> Iterator[list[tuple[str, int, int]]]:
    """The rows, CHUNK at a time in address order, read-only (never creates the file)."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=10)
    try:
        after = ""
        while True:
            rows = db.execute(
                "SELECT username, bytes, messages FROM quota_usage WHERE username > ? "
                "ORDER BY username LIMIT ?", (after, CHUNK)).fetchall()
            if not rows:
                return
            yield [row for row in map(_usable, rows) if row is not None]
            after = rows[-1][0]
    finally:
        db.close()


def _usable(row: tuple[object, object, object]) -> tuple[str, int, int] | None:
    """A row as the panel stores it, or None for one no mailbox could have.

    Dovecot's user writes this file, not the panel: a row with text for a count
    or a name longer than an address is skipped, not a failed copy of all rows.
    """
    username, used, messages = (0 if value is None else value for value in row)
    if not isinstance(username, str) or len(username) > MAX_USERNAME:
        return None
    if type(used) is not int or type(messages) is not int \
            or not (0 <= used <= MAX_COUNT and 0 <= messages <= MAX_COUNT):
        return None
    return username, used, messages
