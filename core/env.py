"""Small readers for settings taken from the environment.

Each fails loudly on a value it cannot understand: a typo in a deployment
should stop the start, not silently fall back to a default.
"""

from __future__ import annotations

import grp
import math
import os
import secrets
import sqlite3
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from core import sqlite_wal

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    """The variable's value; set but empty counts as unset (`VAR= cmd` keeps the default)."""
    return os.environ.get(name) or default


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0/true/false/yes/no, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value):
        raise ImproperlyConfigured(f"{name} must be a finite number, not {raw!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def secret_key(data_dir: Path) -> str:
    """The key from the environment, from a file, or generated once per install.

    The generated key lives in the data directory (never in the repository)
    so sessions survive restarts of the embedded default.
    """
    if value := os.environ.get("MAILADMIN_SECRET_KEY"):
        return value
    key_file = os.environ.get("MAILADMIN_SECRET_KEY_FILE")
    path = Path(key_file) if key_file else data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    if key_file:
        raise ImproperlyConfigured(f"MAILADMIN_SECRET_KEY_FILE {key_file} does not exist")
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def private_data(data_dir: Path, *, sqlite_file: Path | None, group: str = "") -> None:
    """Take the "other" users' access to the data directory and the SQLite database.

    Runs on every start (settings), before anything writes there. A missing
    directory is created 0700 and a missing database 0600 (SQLite would
    create it with the umask's mode, 0644 usually, and gives its -wal and
    -shm files the database file's mode). Existing ones only lose
    their "other" bits: a group grant stays, because a process started
    without MAILADMIN_DATA_GROUP (manage.py from a shell, cron, a worker)
    must not cut Postfix and Dovecot off the maps. With `group`
    (MAILADMIN_DATA_GROUP) they are also put in that group with group read
    (the directory r-x and set-group-ID) for the mail daemons; the other
    files in the directory (the secret key) stay the owner's. The database
    is put in WAL mode with its -wal and -shm files made (core.sqlite_wal),
    so the daemons find them from the first lookup.
    """
    gid = -1
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ImproperlyConfigured(f"MAILADMIN_DATA_GROUP: no group named {group!r}") from None
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Set-group-ID: a -wal or -shm file SQLite makes again while the panel runs
    # is in the daemons' group, not the panel user's own.
    _restrict(data_dir, gid, group_bits=0o2050)
    if sqlite_file is None:
        return
    if not sqlite_file.exists():
        sqlite_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(sqlite_file, os.O_WRONLY | os.O_CREAT, 0o600))
    _restrict(sqlite_file, gid, group_bits=0o040)
    try:
        sqlite_wal.prepare(sqlite_file)
    except sqlite3.Error as error:
        raise ImproperlyConfigured(
            f"{sqlite_file}: cannot put the SQLite database in WAL mode: {error}") from None
    for suffix in ("-journal", "-wal", "-shm"):
        # Without a look first: the -journal exists only during a write.
        _restrict(sqlite_file.with_name(sqlite_file.name + suffix), gid, group_bits=0o040,
                  missing_ok=True)


def _restrict(path: Path, gid: int, *, group_bits: int, missing_ok: bool = False) -> None:
    """Drop the "other" bits; with a group (gid), chgrp and add `group_bits`.

    chmod/chgrp only what differs, so a correct install needs no ownership.
    """
    try:
        state = path.stat()
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    mode = stat.S_IMODE(state.st_mode) & ~0o007
    if gid != -1:
        mode |= group_bits
    try:
        if gid != -1 and state.st_gid != gid:
            os.chown(path, -1, gid)
        if stat.S_IMODE(state.st_mode) != mode:
            os.chmod(path, mode)
    except FileNotFoundError:
        if not missing_ok:
            raise
    except PermissionError:
        raise ImproperlyConfigured(
            f"{path} is mode {stat.S_IMODE(state.st_mode):o}, group {state.st_gid}; it must be "
            f"{mode:o}{f', group {gid}' if gid != -1 else ''}: start the panel as the file's "
            "owner (in MAILADMIN_DATA_GROUP if set), or fix it as root") from None


def database_from_url(url: str) -> dict[str, Any]:
    """Django DATABASES entry from `sqlite:///abs/path` or `mysql://user:pw@host:port/db`."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:////abs/file.sqlite3 is absolute, sqlite:///file.sqlite3 relative.
        path = unquote(parts.path)[1:]
        if not path:
            raise ImproperlyConfigured(f"database URL {url!r} names no SQLite file")
        path = str(Path(path).resolve())
        return {
            # Django's, in WAL mode: the mail daemons read while the panel writes.
            "ENGINE": "core.wal_sqlite3",
            "NAME": path,
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so two writers
                # checking a domain's limits cannot both read the old count.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            # A file, not :memory:, so the daemons in the integration tests can open it.
            "TEST": {"NAME": str(Path(path).with_name("test_" + Path(path).name))},
        }
    if parts.scheme in {"mysql", "mariadb"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"database URL {url!r} names no database")
        # ?socket=/run/mysqld/mysqld.sock: the unix socket of a database on
        # this host, which saves most of a TCP round trip per query.
        socket_path = dict(parse_qsl(parts.query)).get("socket", "")
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "127.0.0.1",
            "PORT": str(parts.port or 3306),
            "CONN_MAX_AGE": 60,
            # A kept connection is pinged before a request reuses it: after MariaDB
            # restarts, the first request reconnects instead of failing.
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                **({"unix_socket": socket_path} if socket_path else {}),
                "charset": "utf8mb4",
                "init_command": "SET sql_mode='STRICT_TRANS_TABLES,NO_ZERO_DATE,"
                "NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO'",
                "isolation_level": "read committed",
            },
            "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
        }
    raise ImproperlyConfigured(
        f"database URL {url!r}: the scheme must be sqlite:/// or mysql://"
    )


GENERATED_PASSWORD_LENGTH = 24


def generated_password(length: int = GENERATED_PASSWORD_LENGTH) -> str:
    """`length` random URL-safe characters, 6 bits each."""
    return secrets.token_urlsafe(length)[:length]
