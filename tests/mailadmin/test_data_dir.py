"""The data directory and the SQLite database in it are private to the panel's user.

They hold every password hash and the live session keys. Each test runs the
settings module afresh (runpy), as a process starting with that environment
would (bin/run, manage.py, gunicorn).
"""

import contextlib
import grp
import os
import runpy
import sqlite3
import stat
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from core import sqlite_wal

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "mailadmin" / "settings.py"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def start(monkeypatch):
    """Load the settings as a process with this data dir (and variables) would."""

    def load(data: Path, **variables: str) -> dict:
        monkeypatch.setenv("MAILADMIN_DATA_DIR", str(data))
        for name in ("MAILADMIN_DATABASE_URL", "MAILADMIN_DATA_GROUP", "MAILADMIN_SECRET_KEY",
                     "MAILADMIN_SECRET_KEY_FILE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(SETTINGS_FILE))

    return load


def test_a_fresh_data_dir_and_database_are_private(tmp_path, start):
    old = os.umask(0o022)  # the usual umask: what the bug ran with
    try:
        data = tmp_path / "var"
        start(data)
        db = data / "mailadmin.sqlite3"
        assert (mode(data), mode(db), mode(data / "secret_key")) == (0o700, 0o600, 0o600)
        # SQLite gives its WAL files the database file's mode.
        with sqlite3.connect(db, isolation_level=None) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            connection.execute("CREATE TABLE t (x)")
            connection.execute("BEGIN")
            connection.execute("INSERT INTO t VALUES (1)")
            assert mode(data / "mailadmin.sqlite3-wal") == 0o600
            assert mode(data / "mailadmin.sqlite3-shm") == 0o600
            connection.execute("COMMIT")
        connection.close()
    finally:
        os.umask(old)


def test_an_existing_world_readable_pair_is_fixed_on_start(tmp_path, start):
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    db = data / "mailadmin.sqlite3"
    for path in (db, data / "mailadmin.sqlite3-journal", data / "mailadmin.sqlite3-wal"):
        path.write_bytes(b"")
        path.chmod(0o644)
    start(data)
    # Only the "other" bits go: a group grant may be the daemons' (MAILADMIN_DATA_GROUP).
    # The switch to WAL mode removed the -journal and made a -shm, with the database's mode.
    assert mode(data) == 0o750
    assert [(p.name, mode(p)) for p in sorted(data.glob("mailadmin.sqlite3*"))] == [
        (f"mailadmin.sqlite3{suffix}", 0o640) for suffix in ("", "-shm", "-wal")]


@pytest.mark.parametrize("vanishes", ["before stat", "before chmod"])
def test_a_journal_that_vanishes_while_it_is_fixed_does_not_stop_the_start(
        tmp_path, start, monkeypatch, vanishes):
    """SQLite's -journal exists only during a write; it can go between seeing it and fixing it."""
    data = tmp_path / "var"
    data.mkdir(mode=0o700)
    journal = data / "mailadmin.sqlite3-journal"
    journal.write_bytes(b"")
    journal.chmod(0o644)
    if vanishes == "before stat":
        journal.unlink()
        real_exists = Path.exists
        monkeypatch.setattr(Path, "exists", lambda path: path == journal or real_exists(path))
    else:
        real_chmod = os.chmod

        def chmod(path, mode, **kwargs):
            if Path(path) == journal:
                journal.unlink(missing_ok=True)
            real_chmod(path, mode, **kwargs)

        monkeypatch.setattr(os, "chmod", chmod)
    start(data)
    assert mode(data / "mailadmin.sqlite3") == 0o600


def test_a_database_outside_the_data_dir_is_private_too(tmp_path, start):
    db = tmp_path / "elsewhere" / "panel.sqlite3"
    db.parent.mkdir()
    db.write_bytes(b"")
    db.chmod(0o644)
    start(tmp_path / "var", MAILADMIN_DATABASE_URL=f"sqlite:///{db}")
    assert (mode(tmp_path / "var"), mode(db)) == (0o700, 0o640)
    assert not (tmp_path / "var" / "mailadmin.sqlite3").exists()


def test_mariadb_leaves_no_sqlite_file(tmp_path, start):
    start(tmp_path / "var", MAILADMIN_DATABASE_URL="mysql://u@127.0.0.1/x")
    assert mode(tmp_path / "var") == 0o700
    assert not list((tmp_path / "var").glob("*.sqlite3"))


def test_the_data_group_lets_the_mail_daemons_read_the_database(tmp_path, start):
    """MAILADMIN_DATA_GROUP: Postfix and Dovecot read the SQLite file through a group."""
    group = grp.getgrgid(os.getgid()).gr_name
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    (data / "mailadmin.sqlite3").write_bytes(b"")
    (data / "mailadmin.sqlite3").chmod(0o644)
    loaded = start(data, MAILADMIN_DATA_GROUP=group)
    assert loaded["MAILADMIN_DATA_GROUP"] == group
    db = data / "mailadmin.sqlite3"
    # Set-group-ID: a -wal or -shm SQLite makes again later is in the group too.
    assert (mode(data), mode(db)) == (0o2750, 0o640)
    assert os.stat(data).st_gid == os.stat(db).st_gid == os.getgid()
    assert mode(data / "secret_key") == 0o600  # the key is never the daemons' business


def test_a_start_without_the_data_group_leaves_the_daemons_access(tmp_path, start):
    """An admin's manage.py, cron or a worker started without the variable must
    not take the daemons' group access away (mail delivery reads the maps)."""
    group = grp.getgrgid(os.getgid()).gr_name
    data = tmp_path / "var"
    start(data, MAILADMIN_DATA_GROUP=group)
    db = data / "mailadmin.sqlite3"
    assert (mode(data), mode(db)) == (0o2750, 0o640)
    start(data)
    assert (mode(data), mode(db)) == (0o2750, 0o640)
    assert os.stat(data).st_gid == os.stat(db).st_gid == os.getgid()


def test_the_data_group_adds_read_access_and_keeps_other_group_bits(tmp_path, start):
    group = grp.getgrgid(os.getgid()).gr_name
    data = tmp_path / "var"
    data.mkdir(mode=0o700)
    data.chmod(0o700)
    db, wal = data / "mailadmin.sqlite3", data / "mailadmin.sqlite3-wal"
    with contextlib.closing(sqlite3.connect(db)) as connection:
        sqlite_wal.use_wal(connection, db)  # the -wal and -shm stay after the close
        connection.execute("CREATE TABLE t (x)")
    db.chmod(0o600)
    wal.chmod(0o666)
    start(data, MAILADMIN_DATA_GROUP=group)
    assert (mode(data), mode(db), mode(wal)) == (0o2750, 0o640, 0o660)


def test_an_unknown_data_group_fails_loudly_in_one_line(tmp_path, start):
    with pytest.raises(ImproperlyConfigured) as error:
        start(tmp_path / "var", MAILADMIN_DATA_GROUP="no-such-group-xyz")
    assert "MAILADMIN_DATA_GROUP" in str(error.value) and "\n" not in str(error.value)
