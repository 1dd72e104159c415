"""The rendered quota pieces: usage copied into quota_usage, and the warnings."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.mailhost import test_render_config as base
from tests.mailhost.test_render_config import MARIADB_URL, render_config, setting, written

# The rendering tests' fixtures: known settings, the daemons' SQLite file, the output.
mail_settings = base.mail_settings
sqlite_daemon_database = base.sqlite_daemon_database
out = base.out

pytestmark = pytest.mark.django_db
SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "dovecot" / "mailadmin-quota-warning"


def maps(text: str) -> list[dict[str, str]]:
    return [dict(re.findall(r"^\s+(\w+) = (.*)$", block, re.MULTILINE))
            for block in re.findall(r"^map \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)]


def conf_of(out: Path) -> str:
    return written(out)["dovecot/conf.d/90-mailadmin.conf"]


@pytest.mark.parametrize("url", [None, MARIADB_URL], ids=["sqlite", "mariadb"])
def test_quota_clone_writes_both_values_into_the_panels_table(out, url):
    render_config(out, *(["--database-url", url] if url else []))
    dict_sql = written(out)["dovecot/dovecot-dict-sql.conf.ext"]
    assert maps(dict_sql) == [
        {"pattern": "priv/quota/storage", "table": "quota_usage",
         "username_field": "username", "value_field": "bytes", "value_type": "uint"},
        {"pattern": "priv/quota/messages", "table": "quota_usage",
         "username_field": "username", "value_field": "messages", "value_type": "uint"},
    ]
    conf = conf_of(out)
    assert "mail_plugins = $mail_plugins quota quota_clone" in conf
    # Only through the dict service: a direct sql dict is "Unknown dict module".
    assert "  quota_clone_dict = proxy::mailadmin_quota\n" in conf
    dialect = "mysql" if url else "sqlite"
    assert (f"  mailadmin_quota = {dialect}:/etc/dovecot/dovecot-dict-sql.conf.ext\n"
            in conf)


def test_on_mariadb_dovecot_writes_the_panels_database(out):
    render_config(out, "--database-url", MARIADB_URL)
    assert setting(written(out)["dovecot/dovecot-dict-sql.conf.ext"], "connect") == (
        "host=127.0.0.1 port=3306 dbname=mail user=ro password=secret")


def test_on_sqlite_dovecot_writes_a_file_of_its_own(out, mail_settings):
    mail_settings.MAILADMIN_DOVECOT_QUOTA_DB = "/var/lib/quota-here/q.sqlite3"
    render_config(out)
    dict_sql = written(out)["dovecot/dovecot-dict-sql.conf.ext"]
    # Never the panel's own file, which the daemons may only read.
    assert setting(dict_sql, "connect") == "/var/lib/quota-here/q.sqlite3"


@pytest.mark.parametrize("path", ["relative/q.sqlite3", "/with space/q.sqlite3"])
def test_it_refuses_a_quota_file_dovecot_could_not_use(out, mail_settings, path):
    from django.core.management.base import CommandError

    mail_settings.MAILADMIN_DOVECOT_QUOTA_DB = path
    with pytest.raises(CommandError, match="MAILADMIN_DOVECOT_QUOTA_DB"):
        render_config(out)


def dict_service(conf: str) -> str:
    service = conf[conf.index("service dict {"):]
    return service[:service.index("\n}\n")]


def test_the_dict_socket_is_the_mail_users_only(out, mail_settings):
    # Debian's `mail` (uid 8) stands for a named vmail user.
    mail_settings.MAILADMIN_VMAIL_UID = 8
    render_config(out)
    service = dict_service(conf_of(out))
    assert setting(service, "    mode") == "0600"
    assert setting(service, "    user") == "mail"


def test_a_vmail_uid_without_a_name_gets_no_warnings_and_an_open_socket(out, mail_settings):
    """Dovecot names socket and service users by name only (it refuses to start
    with `user = 5000`)."""
    mail_settings.MAILADMIN_VMAIL_UID = 5000
    render_config(out)
    conf = conf_of(out)
    assert setting(dict_service(conf), "    mode") == "0666"
    assert "quota_warning" not in conf.replace("No quota warnings", "")
    assert "service quota-warning" not in conf
    assert "useradd --system --uid 5000 vmail" in conf


def test_users_are_warned_at_95_and_80_percent(out, mail_settings):
    mail_settings.MAILADMIN_VMAIL_UID = 8
    render_config(out)
    conf = conf_of(out)
    # The highest first: Dovecot runs only the first level crossed.
    assert setting(conf, "  quota_warning") == (
        "storage=95%% quota-warning 95 %u /etc/dovecot/dovecot.conf")
    assert setting(conf, "  quota_warning2") == (
        "storage=80%% quota-warning 80 %u /etc/dovecot/dovecot.conf")
    service = conf[conf.index("service quota-warning {"):]
    service = service[:service.index("\n}\n")]
    assert setting(service, "  executable") == f"script {SCRIPT}"
    assert setting(service, "  user") == "mail"


@pytest.mark.processes
def test_the_warning_script_refuses_what_it_was_not_meant_to_get(tmp_path):
    for args in (["x", "bob@example.org"], ["80", "-d root"], ["80", "bob@example.org;id"],
                 ["80", "bob@example.org", "relative.conf"], ["80", ""]):
        done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True,
                              timeout=10, check=False)
        assert done.returncode == 64, (args, done.stderr)


@pytest.mark.processes
def test_the_rendered_configuration_parses(out, mail_settings, tmp_path):
    """doveconf reads the rendered file (exit 89 on an unknown setting)."""
    doveconf = Path("/usr/bin/doveconf")
    if not doveconf.exists():
        pytest.skip("doveconf is not installed")
    mail_settings.MAILADMIN_VMAIL_UID = 8
    render_config(out)
    wrapper = tmp_path / "dovecot.conf"
    wrapper.write_text(f"base_dir = {tmp_path}/run\nssl = no\n"
                       f"!include {out}/dovecot/conf.d/90-mailadmin.conf\n")
    done = subprocess.run([str(doveconf), "-c", str(wrapper), "-n"], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "quota_clone_dict = proxy::mailadmin_quota" in done.stdout
