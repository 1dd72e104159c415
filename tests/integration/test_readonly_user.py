"""The daemons' MariaDB user can read the daemon tables, write quota usage, and nothing more."""

import io

import MySQLdb
import pytest
from django.db import connection

pytestmark = pytest.mark.daemons


@pytest.fixture
def ro_cursor(stack):
    if stack.dialect != "mysql":
        pytest.skip("MariaDB grants; the MariaDB run of the suite covers this")
    db = connection.settings_dict
    conn = MySQLdb.connect(host="127.0.0.1", port=int(db["PORT"] or 3306), user=stack.ro_user,
                           password=stack.ro_password, database=db["NAME"])
    try:
        yield conn.cursor()
    finally:
        conn.close()


def test_it_reads_every_daemon_table(ro_cursor):
    for table in ("domains", "users", "aliases", "alias_domains", "app_passwords",
                  "sieve_scripts"):
        ro_cursor.execute(f"SELECT COUNT(*) FROM {table}")
        assert ro_cursor.fetchone() == (0,)


@pytest.mark.parametrize("statement", [
    "INSERT INTO domains (name, description, active, max_mailboxes, max_aliases, max_quota,"
    " default_quota, created, modified) VALUES ('x.org', '', 1, 0, 0, 0, 0, NOW(), NOW())",
    "UPDATE users SET password = 'x'",
    "DELETE FROM aliases",
    "DROP TABLE alias_domains",
    "SELECT * FROM audit_log",
    "SELECT * FROM auth_user",
    # The auto-reply settings are the panel's; Dovecot reads only the scripts.
    "SELECT * FROM mail_rules",
    "DELETE FROM sieve_scripts",
])
def test_it_cannot_write_or_read_elsewhere(ro_cursor, statement):
    with pytest.raises(MySQLdb.OperationalError) as denied:
        ro_cursor.execute(statement)
    assert denied.value.args[0] in (1142, 1044)  # command denied / access denied


def test_it_writes_quota_usage_and_only_as_dovecot_does(ro_cursor):
    """Dovecot's dict-sql upsert (quota_clone): insert, update, read; no delete."""
    ro_cursor.execute("INSERT INTO quota_usage (bytes, username) VALUES (5, 'a@b.example') "
                      "ON DUPLICATE KEY UPDATE bytes = 5")
    ro_cursor.execute("INSERT INTO quota_usage (messages, username) VALUES (2, 'a@b.example') "
                      "ON DUPLICATE KEY UPDATE messages = 2")
    ro_cursor.execute("SELECT bytes, messages FROM quota_usage")
    assert ro_cursor.fetchall() == ((5, 2),)
    with pytest.raises(MySQLdb.OperationalError) as denied:
        ro_cursor.execute("DELETE FROM quota_usage")
    assert denied.value.args[0] == 1142


def test_the_maps_answer_over_the_unix_socket(stack, ro_cursor, tmp_path):
    """A database on the mail host itself: the daemons use MariaDB's socket."""
    from django.core.management import call_command

    from domains import services
    from tests.integration.mailstack import run

    services.create_domain(actor="t", name="example.org")
    services.create_mailbox(actor="t", email="bob@example.org", password="correct horse 1")
    ro_cursor.execute("SELECT @@socket")
    (socket_path,) = ro_cursor.fetchone()
    db = connection.settings_dict
    call_command("render_config", out=str(tmp_path), stdout=io.StringIO(),
                 database_url=f"mysql://{stack.ro_user}:{stack.ro_password}@localhost/"
                              f"{db['NAME']}?socket={socket_path}")
    maps = tmp_path / "postfix" / "mailadmin"
    assert f"hosts = unix:{socket_path}" in (maps / "mailboxes.cf").read_text()
    answer = run(["postmap", "-c", str(stack.postfix_dir), "-q", "bob@example.org",
                  f"mysql:{maps}/mailbox-self.cf"])
    assert answer.stdout.strip() == "bob@example.org"
    dovecot = (tmp_path / "dovecot" / "dovecot-sql.conf.ext").read_text()
    assert f"connect = host={socket_path} dbname={db['NAME']}" in dovecot
