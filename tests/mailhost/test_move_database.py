"""`manage.py move_database`: a SQLite panel with data of every kind, moved into a
new MariaDB database on the real server (root on 127.0.0.1:3306, as bin/test
sets it up), then read back and signed in to; and its refusals."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import MySQLdb
import pytest
from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection
from django.http import HttpRequest
from django.test import Client

from accounts import twofactor
from apppasswords import services as app_password_services
from core.actor import Actor
from core.dbmove import panel_tables
from dkim import services as dkim_services
from domains import services
from domains.models import Mailbox, QuotaUsage
from mailhost.management.commands.move_database import DAEMON_READS, DAEMON_WRITES
from tests.accounts.test_two_factor import SECRET, code
from tests.conftest import MAILBOX_PASSWORD
from tests.dnscheck.test_services import rsa_base64
from tests.integration.mailstack import DAEMON_TABLES, free_port
from tests.integration.mailstack import DAEMON_WRITES as STACK_WRITES
from vacation import services as vacation_services

pytestmark = pytest.mark.processes
MANAGE = Path(settings.BASE_DIR) / "manage.py"


def mariadb_root() -> MySQLdb.Connection:
    try:
        return MySQLdb.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    except MySQLdb.OperationalError as exc:
        message = f"MariaDB on 127.0.0.1:3306 (root, no password): {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def target() -> Iterator[str]:
    """A new empty utf8mb4 database `move_<hex>`; its mysql:// URL."""
    if connection.vendor != "sqlite":
        pytest.skip("moves the SQLite default; the SQLite run of the suite covers this")
    root = mariadb_root()
    name = f"move_{secrets.token_hex(4)}"
    root.cursor().execute(
        f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    try:
        yield f"mysql://root@127.0.0.1:3306/{name}"
    finally:
        root.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
        root.close()


def query(url: str, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    db = MySQLdb.connect(
        host="127.0.0.1", port=3306, user="root", charset="utf8mb4", database=url.rsplit("/", 1)[1]
    )
    try:
        cursor = db.cursor()
        cursor.execute(sql, args)
        return list(cursor.fetchall())
    finally:
        db.close()


def source_count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT COUNT(*) FROM "{table}"')
        return int(cursor.fetchone()[0])


def manage(*args: str, data_dir: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    """manage.py in a process of its own, on its own data directory."""
    env = {**os.environ, "MAILADMIN_DATA_DIR": str(data_dir), **environ}
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def a_panel_of_every_kind(world) -> None:  # type: ignore[no-untyped-def]
    """Beyond `world` (domains, mailboxes, an alias, admins and their domains,
    audit rows): every other kind of row the panel keeps."""
    actor = Actor.cli()
    services.create_alias_domain(actor=actor, name="alias-a.example", target=world.a)
    app_password_services.create_app_password(
        actor=actor, mailbox=world.bob, name="phone", protocols=["imap", "smtp"]
    )
    vacation_services.set_auto_reply(
        actor=actor, mailbox=world.bob, enabled=True, subject="Away", text="Back on Monday."
    )
    QuotaUsage.objects.create(username=world.bob.email, bytes=12345, messages=6)
    dkim_services.set_key(actor=actor, domain=world.a, selector="s1", public_key=rsa_base64(1024))
    twofactor.enable(actor=Actor.account("t"), user=world.admin_a, secret=SECRET, code=code(SECRET))
    # The mailbox with the highest id goes: its id must not be given again.
    gone = services.create_mailbox(actor=actor, email="gone@b.example", password=MAILBOX_PASSWORD)
    services.delete_mailbox(actor=actor, mailbox=gone)
    world.client_for("mailbox")  # a session and its sign-in row, which stay behind
    # A failed sign-in: the lockout's counters move too.
    Client().login(request=HttpRequest(), username="bob@a.example", password="wrong guess")


def test_it_moves_every_table_and_a_mailbox_signs_in_on_mariadb(world, cli, target, tmp_path):
    a_panel_of_every_kind(world)
    bob_hash = Mailbox.objects.get(email="bob@a.example").password

    out = cli("move_database", "--to", target)

    tables, skipped = panel_tables()
    counts = dict(re.findall(r"^  (\w+) +(\d+)$", out, flags=re.M))
    assert set(counts) == {t.name for t in tables}
    for table in tables:
        assert int(counts[table.name]) == source_count(table.name), table.name
        assert query(target, f"SELECT COUNT(*) FROM `{table.name}`")[0][0] == source_count(
            table.name
        ), table.name
    for name in (
        "users",
        "aliases",
        "alias_domains",
        "app_passwords",
        "mail_rules",
        "sieve_scripts",
        "quota_usage",
        "audit_log",
        "dkim_keys",
        "kept_maildirs",
        "otp_totp_totpdevice",
        "otp_static_statictoken",
        "domain_admins",
        "axes_accessattempt",
        "mailhost_mailhost",
        "auth_permission",
    ):
        assert int(counts[name]) > 0, name
    assert [name for name, _ in skipped] == ["accounts_sign_in", "django_session"]
    assert "Not copied: django_session (1 row; sessions: everyone signs in again" in out
    assert query(target, "SELECT COUNT(*) FROM django_session") == [(0,)]

    # Keys, hashes and times as they were.
    assert query(target, "SELECT password FROM users WHERE email = %s", ("bob@a.example",)) == [
        (bob_hash,)
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, password, created, modified FROM users ORDER BY id")
        users = [(i, p, str(c), str(m)) for i, p, c, m in cursor.fetchall()]
        cursor.execute("SELECT id, password, lookup FROM app_passwords")
        app_passwords = cursor.fetchall()
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = 'users'")
        (users_seq,) = cursor.fetchone()
    assert [
        (i, p, str(c), str(m))
        for i, p, c, m in query(
            target, "SELECT id, password, created, modified FROM users ORDER BY id"
        )
    ] == users
    assert query(target, "SELECT id, password, lookup FROM app_passwords") == [
        tuple(row) for row in app_passwords
    ]
    # The deleted mailbox's id is not given again.
    assert query(
        target,
        "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE "
        "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users'",
    ) == [(users_seq + 1,)]
    assert users_seq > max(i for i, *_ in users)

    # What to change next: the README's grants for the daemons' user.
    assert "MAILADMIN_DATABASE_URL=" + target in out
    for table in DAEMON_TABLES:
        assert f"GRANT SELECT ON `{target.rsplit('/', 1)[1]}`.`{table}`" in out
    assert (tuple(DAEMON_TABLES), STACK_WRITES) == (DAEMON_READS, DAEMON_WRITES)
    assert "On the Mail host page set the daemons' database to mysql://mailadmin_ro@" in out

    # The panel on MariaDB: bob signs in with his password, against the moved rows.
    signed_in = manage(
        "shell", "--no-imports", "-c", SIGN_IN, data_dir=tmp_path, MAILADMIN_DATABASE_URL=target
    )
    assert signed_in.returncode == 0, signed_in.stderr
    assert signed_in.stdout.split() == ["302", "200", "bob@a.example"], signed_in.stdout

    # A second move into it is refused: it is not empty any more.
    again = manage("move_database", "--to", target, data_dir=tmp_path)
    assert again.returncode == 1
    [line] = again.stderr.splitlines()
    assert re.fullmatch(
        f"CommandError: the target database {target.rsplit('/', 1)[1]} is not "
        r"empty \(audit_log, auth_user, domains and \d+ more hold rows\): "
        "move_database copies into an empty database only; nothing was moved",
        line,
    ), line
    assert query(target, "SELECT COUNT(*) FROM users") == [(source_count("users"),)]


SIGN_IN = """
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
client = Client()
response = client.post("/login/", {"username": "bob@a.example",
                                   "password": "correct horse battery"})
page = client.get("/me/")
print(response.status_code, page.status_code,
      "bob@a.example" if b"bob@a.example" in page.content else "-")
"""


def test_a_failure_leaves_the_target_as_it_was(world, cli, target):
    """MariaDB refuses a value SQLite took (longer than its column): the copy is
    rolled back and the tables migrate made are dropped."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE users SET name = %s WHERE email = 'carol@b.example'", ["x" * 300])
    carol = Mailbox.objects.get(email="carol@b.example")

    with pytest.raises(CommandError) as refused:
        cli("move_database", "--to", target)

    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"users, row {carol.pk}: Data too long for column 'name'")
    assert message.endswith("; nothing was moved")
    assert query(target, "SHOW TABLES") == []


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (
            "postgres://root@127.0.0.1/x",
            "database URL 'postgres://root@127.0.0.1/x': the scheme must be sqlite:/// or mysql://",
        ),
        (
            "mysql://root@127.0.0.1:3306/",
            "database URL 'mysql://root@127.0.0.1:3306/' names no database",
        ),
        (
            "sqlite:////tmp/elsewhere.sqlite3",
            "sqlite:////tmp/elsewhere.sqlite3: the target must be a mysql:// URL (MariaDB)",
        ),
    ],
)
def test_a_bad_url_is_refused_in_one_line(url, error, tmp_path):
    refused = manage("move_database", "--to", url, data_dir=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [f"CommandError: {error}; nothing was moved"]


def test_an_unreachable_target_is_refused_in_one_line(tmp_path):
    port = free_port()
    refused = manage(
        "move_database", "--to", f"mysql://root:s3cret@127.0.0.1:{port}/x", data_dir=tmp_path
    )
    assert refused.returncode == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith(
        f"CommandError: cannot connect to root@127.0.0.1:{port}/x: "
        "Can't connect to server on '127.0.0.1'"
    )
    assert "s3cret" not in line


def test_a_missing_database_or_a_latin1_one_is_refused(target, tmp_path):
    name = target.rsplit("/", 1)[1]
    missing = manage("move_database", "--to", target + "_not", data_dir=tmp_path)
    assert missing.stderr.splitlines() == [
        f"CommandError: the database {name}_not does not exist on 127.0.0.1:3306: create it "
        "first (README, Moving to MariaDB); nothing was moved"
    ]
    query(target, f"ALTER DATABASE {name} CHARACTER SET latin1")
    latin1 = manage("move_database", "--to", target, data_dir=tmp_path)
    assert latin1.returncode == 1
    assert latin1.stderr.splitlines() == [
        f"CommandError: the database {name} has character set latin1: create it with "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; nothing was moved"
    ]
    assert query(target, "SHOW TABLES") == []


def test_a_password_from_stdin_reaches_migrate_whole_and_is_never_shown():
    from core.dbmove import shown_url, target_entry, target_url

    url = target_url("mysql://panel@127.0.0.1:3306/mailadmin", "p@ss:w/rd%20 #")
    assert target_entry(url)["PASSWORD"] == "p@ss:w/rd%20 #"
    assert target_entry(url)["USER"] == "panel"
    assert shown_url(url) == "mysql://panel:PASSWORD@127.0.0.1:3306/mailadmin"
    assert target_url("mysql://panel:inurl@h/db", "other") == "mysql://panel:inurl@h/db"
