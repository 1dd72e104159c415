"""render_config: the Postfix and Dovecot files, and the daemon queries they hold.

The files are checked as text here (no daemons needed); the queries of
mailhost.render are then run on SQLite the way Postfix and Dovecot expand
them, against a small world made with domains.services:

* example.org: bob (2G), dave (disabled), postmaster -> bob + carol@else.net,
  old@ (disabled alias), the catch-all @example.org -> bob, and aliases to
  undeliverable destinations (todave@, toeve@, toold@, and mixed@ with some);
* alias.example: an alias domain of example.org; off.example: a disabled one;
* closed.org: a disabled domain with the mailbox eve.
"""

from __future__ import annotations

import io
import os
import re
import stat
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from domains import passwords, services
from domains.models import Alias, Domain
from domains.validators import normalize_hosted_address
from mailhost import render
from mailhost.models import MailHost
from tests.conftest import change_host

MARIADB_URL = "mysql://ro:secret@127.0.0.1:3306/mail"
MAPS = ["domains.cf", "mailboxes.cf", "aliases.cf", "mailbox-self.cf",
        "aliasdomain-mailboxes.cf", "aliasdomain-aliases.cf", "aliasdomain-catchall.cf",
        "sender-login.cf", "aliasdomain-sender-login.cf"]
MAP_FILES = [f"postfix/mailadmin/{name}" for name in MAPS]
SECRET_FILES = [*MAP_FILES, "dovecot/dovecot-sql.conf.ext",
                "dovecot/dovecot-sql-app-passwords.conf.ext", "dovecot/dovecot-dict-sql.conf.ext",
                "dovecot/dovecot-dict-sieve.conf.ext"]
RSPAMD_FILES = [f"rspamd/local.d/{name}" for name in (
    "worker-proxy.inc", "milter_headers.conf", "dkim_signing.conf", "arc.conf")]
PUBLIC_FILES = ["postfix/main.cf", "postfix/master.cf", "dovecot/conf.d/90-mailadmin.conf",
                *RSPAMD_FILES]
EXPECTED_FILES = sorted(SECRET_FILES + PUBLIC_FILES)
ALIAS_MAP_ORDER = ["aliases.cf", "mailbox-self.cf", "aliasdomain-mailboxes.cf",
                   "aliasdomain-aliases.cf", "aliasdomain-catchall.cf"]
ACTOR = "test-setup"
PASSWORD = "s3cret-Passw0rd!"
GIB = 1024**3

# render_config reads the mail host's row, made from these settings on first use.
pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(autouse=True)
def mail_settings(settings, tmp_path_factory):
    """Known values for every setting the templates read, whatever the environment says."""
    tls = tmp_path_factory.mktemp("tls")
    for name in ("cert.pem", "key.pem"):
        (tls / name).write_text("not checked beyond existing\n")
    settings.MAILADMIN_TLS_CERT = str(tls / "cert.pem")
    settings.MAILADMIN_TLS_KEY = str(tls / "key.pem")
    settings.MAILADMIN_DAEMON_DATABASE_URL = ""
    settings.MAILADMIN_MAIL_HOSTNAME = "mail.example.org"
    settings.MAILADMIN_POSTFIX_DIR = "/etc/postfix"
    settings.MAILADMIN_DOVECOT_DIR = "/etc/dovecot"
    settings.MAILADMIN_POSTFIX_QUEUE_DIR = "/var/spool/postfix"
    settings.MAILADMIN_SMTP_LISTEN = "smtp"
    settings.MAILADMIN_SUBMISSION_LISTEN = "submission"
    settings.MAILADMIN_LMTP = "unix:private/dovecot-lmtp"
    settings.MAILADMIN_SASL = "unix:private/auth"
    settings.MAILADMIN_MYNETWORKS = "127.0.0.0/8 [::1]/128"
    settings.MAILADMIN_POSTFIX_ALIAS_MAPS = ""
    settings.MAILADMIN_VMAIL_DIR = "/var/vmail"
    settings.MAILADMIN_VMAIL_UID = 5000
    settings.MAILADMIN_VMAIL_GID = 5000
    settings.MAILADMIN_PASSWORD_SCHEME = "BLF-CRYPT"
    settings.MAILADMIN_DATA_GROUP = ""
    settings.MAILADMIN_RSPAMD_MILTER = "inet:127.0.0.1:11332"
    settings.MAILADMIN_RSPAMD_DIR = "/etc/rspamd"
    return settings


@pytest.fixture
def out(tmp_path) -> Path:
    return tmp_path / "etc"


# Rendering tests name the daemons' SQLite file, so they read the same on a
# MariaDB run of the suite; test_it_defaults_to_the_panels_database covers the default.
DAEMON_SQLITE = "/var/lib/mailadmin/mailadmin.sqlite3"


@pytest.fixture(autouse=True)
def sqlite_daemon_database(settings):
    settings.MAILADMIN_DAEMON_DATABASE_URL = f"sqlite:///{DAEMON_SQLITE}"


def render_config(out: Path, *args: str) -> str:
    printed = io.StringIO()
    call_command("render_config", "--out", str(out), *args, stdout=printed,
                 stderr=io.StringIO())
    return printed.getvalue()


def written(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*"))
            if p.is_file()}


def setting(text: str, name: str) -> str:
    """The value of `name = value` in a Postfix map, main.cf or a Dovecot file."""
    values = re.findall(rf"^{re.escape(name)} = (.*)$", text, re.MULTILINE)
    assert len(values) == 1, (name, values)
    return values[0]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def submission_options(master_cf: str) -> list[str]:
    lines = master_cf.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("submission "))
    options = []
    for line in lines[start + 1:]:
        if not line.startswith("  -o "):
            break
        options.append(line.removeprefix("  -o "))
    return options


# ---------------------------------------------------------------- the files


def test_it_writes_every_file_for_sqlite(out):
    printed = render_config(out)

    files = written(out)
    assert sorted(files) == EXPECTED_FILES
    assert printed.splitlines() == [f"wrote {out / name}" for name in EXPECTED_FILES]
    sqlite_file = DAEMON_SQLITE
    for name in MAP_FILES:
        assert setting(files[name], "dbpath") == sqlite_file
        assert "query = SELECT " in files[name]
        assert "CONCAT" not in files[name]
        assert "password" not in files[name]
    sql = files["dovecot/dovecot-sql.conf.ext"]
    assert setting(sql, "driver") == "sqlite"
    assert setting(sql, "connect") == sqlite_file
    assert "('*:bytes=' || u.quota)" in setting(sql, "user_query")
    assert "('%u@' || d.name)" in files["postfix/mailadmin/aliasdomain-mailboxes.cf"]
    main = files["postfix/main.cf"]
    assert setting(main, "virtual_mailbox_domains") == (
        "sqlite:/etc/postfix/mailadmin/domains.cf")
    assert setting(main, "smtpd_sender_login_maps") == (
        "sqlite:/etc/postfix/mailadmin/sender-login.cf, "
        "sqlite:/etc/postfix/mailadmin/aliasdomain-sender-login.cf")


def test_dovecot_reads_a_private_sqlite_file_through_the_data_group(out, mail_settings):
    """The database is 0640 in MAILADMIN_DATA_GROUP, not world-readable (README)."""
    render_config(out)
    assert "extra_groups" not in written(out)["dovecot/conf.d/90-mailadmin.conf"]
    mail_settings.MAILADMIN_DATA_GROUP = "postfix"
    render_config(out)
    conf = written(out)["dovecot/conf.d/90-mailadmin.conf"]
    worker = conf[conf.index("service auth-worker {"):]
    assert setting(worker[:worker.index("}")], "  extra_groups") == "postfix"
    render_config(out, "--database-url", MARIADB_URL)
    assert "extra_groups" not in written(out)["dovecot/conf.d/90-mailadmin.conf"]


def test_it_writes_every_file_for_mariadb(out):
    render_config(out, "--database-url", MARIADB_URL)

    files = written(out)
    assert sorted(files) == EXPECTED_FILES
    for name in MAP_FILES:
        text = files[name]
        assert setting(text, "hosts") == "inet:127.0.0.1:3306"
        assert setting(text, "user") == "ro"
        assert setting(text, "password") == "secret"
        assert setting(text, "dbname") == "mail"
        assert "dbpath" not in text
        assert "||" not in text
    for name in ["aliasdomain-mailboxes.cf", "aliasdomain-aliases.cf",
                 "aliasdomain-catchall.cf", "aliasdomain-sender-login.cf"]:
        assert "CONCAT(" in setting(files[f"postfix/mailadmin/{name}"], "query"), name
    assert "CONCAT('%u', '@', d.name)" in files["postfix/mailadmin/aliasdomain-aliases.cf"]
    sql = files["dovecot/dovecot-sql.conf.ext"]
    assert setting(sql, "driver") == "mysql"
    assert setting(sql, "connect") == (
        "host=127.0.0.1 port=3306 dbname=mail user=ro password=secret")
    assert "CONCAT('*:bytes=', u.quota)" in setting(sql, "user_query")
    assert setting(files["postfix/main.cf"], "virtual_mailbox_maps") == (
        "mysql:/etc/postfix/mailadmin/mailboxes.cf")


def test_it_takes_the_daemon_database_from_the_setting(out, mail_settings):
    mail_settings.MAILADMIN_DAEMON_DATABASE_URL = "mysql://reader:pw@db.internal/mailbase"

    render_config(out)

    files = written(out)
    assert setting(files["postfix/mailadmin/domains.cf"], "hosts") == "inet:db.internal:3306"
    assert setting(files["dovecot/dovecot-sql.conf.ext"], "connect") == (
        "host=db.internal port=3306 dbname=mailbase user=reader password=pw")


@pytest.mark.parametrize("url", [None, MARIADB_URL], ids=["sqlite", "mariadb"])
def test_it_never_html_escapes(out, url):
    render_config(out, *(["--database-url", url] if url else []))

    for name, text in written(out).items():
        for entity in ("&#x27;", "&#39;", "&quot;", "&gt;", "&lt;", "&amp;"):
            assert entity not in text, (name, entity)
    files = written(out)
    assert "WHERE d.name = '%s'" in files["postfix/mailadmin/domains.cf"]
    assert setting(files["postfix/main.cf"], "smtpd_tls_protocols") == ">=TLSv1.2"


@pytest.mark.parametrize("url", [None, MARIADB_URL], ids=["sqlite", "mariadb"])
def test_it_keeps_files_with_the_password_from_other_users(out, url):
    render_config(out, *(["--database-url", url] if url else []))

    for name in SECRET_FILES:
        assert mode(out / name) == 0o640, name
    for name in PUBLIC_FILES:
        assert mode(out / name) == 0o644, name


def test_it_changes_nothing_on_a_second_run(out):
    render_config(out)
    long_ago = 1_000_000_000
    for name in EXPECTED_FILES:
        os.utime(out / name, (long_ago, long_ago))
    before = {name: ((out / name).stat().st_mtime, (out / name).stat().st_ino)
              for name in EXPECTED_FILES}

    printed = render_config(out)

    assert printed == f"{out}: nothing changed\n"
    assert {name: ((out / name).stat().st_mtime, (out / name).stat().st_ino)
            for name in EXPECTED_FILES} == before
    assert sorted(p.name for p in out.rglob(".*")) == []


def test_it_rewrites_only_what_a_settings_change_touches(out, mail_settings):
    render_config(out)
    change_host(mail_hostname="mx.example.net")

    printed = render_config(out)

    assert printed.splitlines() == [
        f"wrote {out / 'dovecot/conf.d/90-mailadmin.conf'}",
        f"wrote {out / 'postfix/main.cf'}",
    ]
    assert setting((out / "postfix/main.cf").read_text(), "myhostname") == "mx.example.net"


def test_it_dates_what_it_writes_a_few_seconds_back(out):
    # Postfix rereads a main.cf whose mtime is within the last second in 300 ms
    # pauses (1.5-2 s for `postconf -n` on a file just written).
    render_config(out)
    now = time.time()
    for name in EXPECTED_FILES:
        assert now - 60 < (out / name).stat().st_mtime <= now - 4, name


def test_it_keeps_the_mode_and_owner_of_an_installed_file(out, mail_settings):
    render_config(out)
    main_cf, sql = out / "postfix/main.cf", out / "dovecot/dovecot-sql.conf.ext"
    main_cf.chmod(0o600)
    sql.chmod(0o604)
    owner = (8, 8) if os.geteuid() == 0 else (os.getuid(), os.getgid())  # 8: Debian's mail
    os.chown(sql, *owner)
    change_host(mail_hostname="mx.example.net", vmail_uid=5001)

    render_config(out)

    assert "myhostname = mx.example.net" in main_cf.read_text()
    assert "5001 AS uid" in sql.read_text()
    assert (mode(main_cf), mode(sql)) == (0o600, 0o604)
    assert (sql.stat().st_uid, sql.stat().st_gid) == owner


def test_it_lists_the_virtual_alias_maps_in_lookup_order(out):
    render_config(out)

    maps = setting((out / "postfix/main.cf").read_text(), "virtual_alias_maps").split(", ")
    assert maps == [f"sqlite:/etc/postfix/mailadmin/{name}" for name in ALIAS_MAP_ORDER]
    assert render.VIRTUAL_ALIAS_ORDER == ALIAS_MAP_ORDER


def test_it_turns_on_sasl_and_sender_checks_for_submission_only(out):
    render_config(out)

    master = (out / "postfix/master.cf").read_text()
    options = submission_options(master)
    assert "smtpd_sasl_auth_enable=yes" in options
    assert "smtpd_sender_restrictions=reject_sender_login_mismatch" in options
    assert "smtpd_tls_auth_only=yes" in options
    assert "smtpd_relay_restrictions=permit_sasl_authenticated,reject" in options
    assert master.count("smtpd_sasl_auth_enable=yes") == 1
    main = (out / "postfix/main.cf").read_text()
    assert setting(main, "smtpd_sasl_auth_enable") == "no"
    assert setting(main, "smtpd_sasl_type") == "dovecot"


def test_it_puts_the_settings_into_the_files(out, mail_settings):
    mail_settings.MAILADMIN_LMTP = "inet:127.0.0.1:2424"
    mail_settings.MAILADMIN_SASL = "unix:private/auth"
    mail_settings.MAILADMIN_VMAIL_UID = 5001
    mail_settings.MAILADMIN_VMAIL_GID = 5002
    mail_settings.MAILADMIN_VMAIL_DIR = "/srv/vmail/"
    mail_settings.MAILADMIN_POSTFIX_DIR = "/opt/postfix"
    mail_settings.MAILADMIN_DOVECOT_DIR = "/opt/dovecot/"
    mail_settings.MAILADMIN_MAIL_HOSTNAME = "mx.example.net"
    mail_settings.MAILADMIN_SMTP_LISTEN = "127.0.0.1:2525"
    mail_settings.MAILADMIN_SUBMISSION_LISTEN = "127.0.0.1:5870"
    mail_settings.MAILADMIN_MYNETWORKS = "10.0.0.0/8"

    render_config(out)

    files = written(out)
    main, master = files["postfix/main.cf"], files["postfix/master.cf"]
    dovecot, sql = files["dovecot/conf.d/90-mailadmin.conf"], files["dovecot/dovecot-sql.conf.ext"]
    assert setting(main, "virtual_transport") == "lmtp:inet:127.0.0.1:2424"
    assert setting(main, "smtpd_sasl_path") == "private/auth"
    assert setting(main, "myhostname") == "mx.example.net"
    assert setting(main, "mynetworks") == "10.0.0.0/8"
    assert setting(main, "virtual_mailbox_domains") == "sqlite:/opt/postfix/mailadmin/domains.cf"
    assert any(line.startswith("127.0.0.1:2525 inet") for line in master.splitlines())
    assert any(line.startswith("127.0.0.1:5870 inet") for line in master.splitlines())
    assert "  inet_listener lmtp {\n    address = 127.0.0.1\n    port = 2424\n  }" in dovecot
    assert "  unix_listener /var/spool/postfix/private/auth {\n    mode = 0660" in dovecot
    for line in ["mail_uid = 5001", "mail_gid = 5002", "first_valid_uid = 5001",
                 "last_valid_uid = 5001", "args = /opt/dovecot/dovecot-sql.conf.ext",
                 "postmaster_address = postmaster@mx.example.net"]:
        assert line in dovecot.splitlines() or f"  {line}" in dovecot.splitlines(), line
    assert "SELECT '/srv/vmail/%d/%n' AS home, 5001 AS uid, 5002 AS gid" in setting(
        sql, "user_query")


def test_it_renders_tcp_and_absolute_socket_listeners(out, mail_settings):
    mail_settings.MAILADMIN_SASL = "inet:127.0.0.1:12345"
    mail_settings.MAILADMIN_LMTP = "unix:/run/dovecot/lmtp"

    render_config(out)

    main = (out / "postfix/main.cf").read_text()
    dovecot = (out / "dovecot/conf.d/90-mailadmin.conf").read_text()
    assert setting(main, "smtpd_sasl_path") == "inet:127.0.0.1:12345"
    assert "service auth {\n  inet_listener {\n    address = 127.0.0.1\n    port = 12345" in (
        dovecot)
    assert "  unix_listener /run/dovecot/lmtp {" in dovecot


def test_it_points_postfix_lmtp_at_the_unix_socket(out):
    render_config(out)

    main = (out / "postfix/main.cf").read_text()
    assert setting(main, "virtual_transport") == "lmtp:unix:private/dovecot-lmtp"
    assert setting(main, "smtpd_sasl_path") == "private/auth"
    dovecot = (out / "dovecot/conf.d/90-mailadmin.conf").read_text()
    assert "  unix_listener /var/spool/postfix/private/dovecot-lmtp {" in dovecot


# ---------------------------------------------------------------- refusals


def test_it_refuses_an_unwritable_directory_in_one_line():
    with pytest.raises(CommandError) as refused:
        render_config(Path("/proc/forbidden"))

    assert str(refused.value).startswith("cannot write to /proc/forbidden: ")
    assert "\n" not in str(refused.value)


def test_it_refuses_a_file_as_the_directory(tmp_path):
    (tmp_path / "etc").write_text("not a directory\n")

    with pytest.raises(CommandError) as refused:
        render_config(tmp_path / "etc")

    assert "cannot write to" in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("name", ["MAILADMIN_LMTP", "MAILADMIN_SASL"])
def test_it_refuses_an_unknown_listener_kind(out, mail_settings, name):
    setattr(mail_settings, name, "tcp:x")

    with pytest.raises(CommandError) as refused:
        render_config(out)

    assert "tcp:x" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_it_refuses_an_inet_listener_without_a_port(out, mail_settings):
    mail_settings.MAILADMIN_LMTP = "inet:127.0.0.1"

    with pytest.raises(CommandError):
        render_config(out)


@pytest.mark.parametrize("url", ["postgres://ro:secret@127.0.0.1/mail",
                                 "mysql://ro:secret@127.0.0.1:notaport/mail"],
                         ids=["scheme", "port"])
def test_it_refuses_a_bad_database_url(out, url):
    with pytest.raises(CommandError) as refused:
        render_config(out, "--database-url", url)

    assert "\n" not in str(refused.value)


def test_it_replaces_an_installed_file_that_is_not_utf8(out):
    (out / "postfix").mkdir(parents=True)
    (out / "postfix/main.cf").write_bytes(b"# caf\xe9\nmyhostname = old\n")

    try:
        render_config(out)
    except CommandError as refused:
        assert "\n" not in str(refused)
    else:
        assert "myhostname = mail.example.org" in (out / "postfix/main.cf").read_text()


# ---------------------------------------------------------------- the queries, run on SQLite


@pytest.fixture
def mail_world(db):
    services.create_domain(actor=ACTOR, name="example.org")
    services.create_mailbox(actor=ACTOR, email="bob@example.org", password=PASSWORD,
                            quota="2G")
    services.create_mailbox(actor=ACTOR, email="dave@example.org", password=PASSWORD,
                            active=False)
    services.create_alias(actor=ACTOR, source="postmaster@example.org",
                          destinations="bob@example.org,carol@else.net", checked_domains=None)
    services.create_alias(actor=ACTOR, source="old@example.org",
                          destinations="bob@example.org", active=False, checked_domains=None)
    services.create_alias(actor=ACTOR, source="@example.org", destinations="bob@example.org",
                          checked_domains=None)
    # Deliverable destinations only: a disabled mailbox, a mailbox of a
    # disabled domain and a disabled alias are left out of the answer.
    services.create_alias(actor=ACTOR, source="todave@example.org",
                          destinations="dave@example.org", checked_domains=None)
    services.create_alias(actor=ACTOR, source="mixed@example.org",
                          destinations="dave@example.org,bob@example.org,old@example.org,"
                                       "eve@closed.org,carol@else.net,postmaster@example.org",
                                       checked_domains=None)
    services.create_alias(actor=ACTOR, source="toeve@example.org",
                          destinations="eve@closed.org", checked_domains=None)
    services.create_alias(actor=ACTOR, source="toold@example.org",
                          destinations="old@example.org", checked_domains=None)
    # A known limit: the check is one level deep. todave@ is an active alias,
    # so it counts as deliverable although it has nothing deliverable itself.
    services.create_alias(actor=ACTOR, source="chain@example.org",
                          destinations="todave@example.org", checked_domains=None)
    services.create_alias_domain(actor=ACTOR, name="alias.example", target="example.org")
    services.create_alias_domain(actor=ACTOR, name="off.example", target="example.org",
                                 active=False)
    services.create_domain(actor=ACTOR, name="closed.org")
    services.create_mailbox(actor=ACTOR, email="eve@closed.org", password=PASSWORD)
    services.set_domain_active(actor=ACTOR, domain=Domain.objects.get(name="closed.org"),
                               active=False)


def _quoted(value: str) -> str:
    return value.replace("'", "''")


def _rows(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def _dialect() -> str:
    """The queries for the database this run uses: SQLite's and MariaDB's both get run."""
    return "sqlite" if connection.vendor == "sqlite" else "mysql"


def postfix_lookup(map_name: str, key: str) -> str | None:
    """What Postfix's sqlite map answers for `key`: rows joined by commas, or None.

    As in Postfix: %s is the key, %u its local part, %d its domain; a query
    using %u (or %d) is not run at all when that part is empty.
    """
    query = render.postfix_queries(_dialect())[map_name]
    local, _, domain = key.rpartition("@") if "@" in key else ("", "", "")
    if ("%u" in query and not local) or ("%d" in query and not domain):
        return None
    sql = (query.replace("%s", _quoted(key)).replace("%u", _quoted(local))
           .replace("%d", _quoted(domain)))
    rows = _rows(sql)
    return ",".join(str(row[0]) for row in rows) if rows else None


def virtual_alias(key: str) -> str | None:
    """The first answer along virtual_alias_maps, as Postfix consults them."""
    for name in render.VIRTUAL_ALIAS_ORDER:
        answer = postfix_lookup(name, key)
        if answer is not None:
            return answer
    return None


def dovecot_lookup(query_name: str, user: str = "") -> list[tuple]:
    local, _, domain = user.partition("@")
    query = render.dovecot_queries(_dialect(), MailHost.current())[query_name]
    return _rows(query.replace("%u", _quoted(user)).replace("%d", _quoted(domain))
                 .replace("%n", _quoted(local)))


POSTFIX_ANSWERS = {
    "domains.cf": {
        "example.org": "1", "alias.example": "1", "off.example": None,
        "closed.org": None, "nowhere.org": None,
    },
    "mailboxes.cf": {
        "bob@example.org": "1", "dave@example.org": None, "eve@closed.org": None,
        "postmaster@example.org": None, "bob@alias.example": None,
    },
    "aliases.cf": {
        "postmaster@example.org": "bob@example.org,carol@else.net",
        "@example.org": "bob@example.org", "old@example.org": None,
        "bob@example.org": None, "@alias.example": None,
        "todave@example.org": None, "toeve@example.org": None, "toold@example.org": None,
        "mixed@example.org": "bob@example.org,carol@else.net,postmaster@example.org",
        "chain@example.org": "todave@example.org",  # one level deep (the docstring)
    },
    "mailbox-self.cf": {
        "bob@example.org": "bob@example.org", "dave@example.org": None,
        "eve@closed.org": None, "@example.org": None,
    },
    "aliasdomain-mailboxes.cf": {
        "bob@alias.example": "bob@example.org", "Bob'x@alias.example": None,
        "dave@alias.example": None, "bob@off.example": None, "bob@example.org": None,
        "@alias.example": None,
    },
    "aliasdomain-aliases.cf": {
        "postmaster@alias.example": "bob@example.org,carol@else.net",
        "old@alias.example": None, "postmaster@off.example": None, "@alias.example": None,
        "todave@alias.example": None,
        "mixed@alias.example": "bob@example.org,carol@else.net,postmaster@example.org",
    },
    "aliasdomain-catchall.cf": {
        "@alias.example": "bob@example.org", "nobody@alias.example": None,
        "bob@alias.example": None, "@off.example": None, "@example.org": None,
    },
    "sender-login.cf": {
        "bob@example.org": "bob@example.org",
        "postmaster@example.org": "bob@example.org,carol@else.net",
        "bob@alias.example": None, "@example.org": None, "nobody@example.org": None,
        "dave@example.org": None, "eve@closed.org": None,
    },
    "aliasdomain-sender-login.cf": {
        "bob@alias.example": "bob@example.org",
        "postmaster@alias.example": "bob@example.org,carol@else.net",
        "@alias.example": None, "bob@off.example": None, "bob@example.org": None,
        "nobody@alias.example": None,
    },
}


@pytest.mark.parametrize(
    ("map_name", "key", "answer"),
    [(m, k, a) for m, answers in POSTFIX_ANSWERS.items() for k, a in answers.items()],
)
def test_it_answers_postfix_lookups(mail_world, map_name, key, answer):
    assert postfix_lookup(map_name, key) == answer


@pytest.mark.parametrize(("stored", "answer"), [
    ("bob@example.org, carol@else.net", "bob@example.org,carol@else.net"),
    ("bob@example.org carol@else.net", "bob@example.org,carol@else.net"),
    (",bob@example.org,,carol@else.net,", "bob@example.org,carol@else.net"),
    ("Dave@Example.ORG,Carol@Else.net", "carol@else.net"),  # dave is disabled
    ('bob@example.org,"x"@else.net', 'bob@example.org,"x"@else.net'),
    ("bob@example.org,x\\y@else.net", "bob@example.org,x\\y@else.net"),
    ("bob@example.org,x\x01y@else.net", "bob@example.org,x\x01y@else.net"),
])
def test_it_reads_destinations_the_panel_did_not_write(mail_world, stored, answer):
    # An adopted database, or a hand edit: adopt normalises and refuses such
    # lists, but a stray space must not drop a destination, uppercase must not
    # pass as external, and a quote must not break the JSON split (an error
    # makes Postfix defer every message to the alias).
    Alias.objects.filter(source="postmaster@example.org").update(destinations=stored)

    for map_name, key in [("aliases.cf", "postmaster@example.org"),
                          ("aliasdomain-aliases.cf", "postmaster@alias.example")]:
        assert postfix_lookup(map_name, key) == answer


def test_it_has_a_test_for_every_postfix_map():
    assert set(POSTFIX_ANSWERS) == set(render.postfix_queries("sqlite")) == set(MAPS)


@pytest.mark.parametrize(("key", "answer"), [
    ("bob@example.org", "bob@example.org"),
    ("postmaster@example.org", "bob@example.org,carol@else.net"),
    ("bob@alias.example", "bob@example.org"),
    ("@alias.example", "bob@example.org"),
    ("@example.org", "bob@example.org"),
    ("nobody@alias.example", None),
    ("dave@example.org", None),
])
def test_it_resolves_virtual_aliases_in_map_order(mail_world, key, answer):
    assert virtual_alias(key) == answer


def test_it_answers_dovecot_password_lookups(mail_world):
    [(user, stored)] = dovecot_lookup("password_query", "bob@example.org")

    assert user == "bob@example.org"
    assert stored.startswith("{BLF-CRYPT}")
    assert passwords.verify_password(PASSWORD, stored)
    assert dovecot_lookup("password_query", "dave@example.org") == []
    assert dovecot_lookup("password_query", "eve@closed.org") == []
    assert dovecot_lookup("password_query", "bob@alias.example") == []


def test_it_answers_dovecot_user_lookups(mail_world, mail_settings):
    mail_settings.MAILADMIN_VMAIL_DIR = "/srv/vmail"
    mail_settings.MAILADMIN_VMAIL_UID = 5001
    mail_settings.MAILADMIN_VMAIL_GID = 5002

    assert dovecot_lookup("user_query", "bob@example.org") == [
        ("/srv/vmail/example.org/bob", 5001, 5002, f"*:bytes={2 * GIB}"),
    ]
    assert dovecot_lookup("user_query", "dave@example.org") == []
    assert sorted(dovecot_lookup("iterate_query")) == [("bob@example.org",)]


@pytest.mark.django_db
def test_it_refuses_a_daemon_password_with_a_space(tmp_path):
    with pytest.raises(CommandError) as refused:
        call_command("render_config", out=str(tmp_path),
                     database_url="mysql://ro:a%20b@127.0.0.1:3306/mail", stdout=io.StringIO())
    assert "cannot contain spaces" in str(refused.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.both_backends  # no database, but the backend decides what it renders
def test_it_defaults_to_the_panels_database(out, settings):
    settings.MAILADMIN_DAEMON_DATABASE_URL = ""
    render_config(out)

    text = (out / "postfix/mailadmin/mailboxes.cf").read_text()
    panel = django_settings.DATABASES["default"]
    if connection.vendor == "sqlite":
        assert setting(text, "dbpath") == str(panel["NAME"])
    else:
        assert setting(text, "user") == "mailadmin_ro"
        assert setting(text, "dbname") == str(panel["NAME"])


def _dovecot_username_chars(out: Path) -> str:
    value = setting((out / "dovecot/conf.d/90-mailadmin.conf").read_text(),
                    "auth_username_chars")
    # Quoted: unquoted, Dovecot reads the `#` in the list as a comment.
    assert value.startswith('"') and value.endswith('"'), value
    return value[1:-1]


def test_dovecot_takes_exactly_the_characters_the_validator_accepts(out):
    render_config(out)

    allowed = _dovecot_username_chars(out)
    assert len(set(allowed)) == len(allowed)
    for code in range(0x21, 0x7f):
        char = chr(code)
        if char == "@":
            assert char in allowed  # the address's own separator
            continue
        try:
            normalize_hosted_address(f"a{char}b@example.org", mailbox=True)
        except ValidationError:
            accepted = False
        else:
            accepted = True
        # Uppercase is accepted (and lowered after Dovecot's check, by %Lu).
        assert accepted == (char in allowed), char
    for unsafe in '%/\\"':
        assert unsafe not in allowed


def test_it_names_no_local_alias_database(out):
    # Left at Postfix's default (hash:/etc/aliases), every smtpd logs
    # "open database /etc/aliases.db" on a host that has none.
    render_config(out)

    main = (out / "postfix/main.cf").read_text()
    assert re.search(r"^alias_maps =$", main, re.MULTILINE), main
    assert re.search(r"^alias_database =$", main, re.MULTILINE), main


def test_it_keeps_the_local_alias_file_when_told(out, mail_settings):
    # mydestination = localhost: Postfix's own notices and cron mail go to
    # postmaster@ and root@localhost, which only /etc/aliases forwards.
    mail_settings.MAILADMIN_POSTFIX_ALIAS_MAPS = "hash:/etc/aliases"

    render_config(out)

    main = (out / "postfix/main.cf").read_text()
    assert setting(main, "alias_maps") == "hash:/etc/aliases"
    assert setting(main, "alias_database") == "hash:/etc/aliases"


@pytest.mark.parametrize("name", ["MAILADMIN_TLS_CERT", "MAILADMIN_TLS_KEY"])
def test_it_refuses_a_missing_tls_file_in_one_line(out, mail_settings, name):
    # Debian's snakeoil pair (the default) is not there unless ssl-cert made it:
    # rendered anyway, Postfix TLS and so the submission port would be broken.
    setattr(mail_settings, name, "/etc/ssl/nowhere/ssl-cert-snakeoil.pem")

    with pytest.raises(CommandError) as refused:
        render_config(out)

    message = str(refused.value)
    assert message.startswith(f"{name}=/etc/ssl/nowhere/ssl-cert-snakeoil.pem: no such file")
    assert "\n" not in message
    assert not out.exists()
