"""The settings layer: safe defaults, loud failures, no secrets in the repository."""

import os
import runpy
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from core import env
from mailadmin.celery import app


def test_an_absolute_sqlite_url_keeps_one_leading_slash(tmp_path):
    db = env.database_from_url(f"sqlite:///{tmp_path}/panel.sqlite3")
    assert db["NAME"] == f"{tmp_path}/panel.sqlite3"
    assert db["TEST"]["NAME"] == f"{tmp_path}/test_panel.sqlite3"
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_a_mysql_url_gets_utf8mb4_and_strict_mode():
    db = env.database_from_url("mysql://panel:p%40ss@db.internal:3307/mailadmin")
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "panel", "p@ss", "db.internal", "3307", "mailadmin")
    assert db["OPTIONS"]["charset"] == "utf8mb4"
    assert "STRICT_TRANS_TABLES" in db["OPTIONS"]["init_command"]
    assert db["TEST"]["CHARSET"] == "utf8mb4"


@pytest.mark.parametrize("url", ["postgres://x/y", "sqlite://", "mysql://host:3306/"])
def test_a_bad_database_url_fails_loudly(url):
    with pytest.raises(ImproperlyConfigured):
        env.database_from_url(url)


def test_booleans_and_numbers_fail_loudly_on_typos(monkeypatch):
    monkeypatch.setenv("MAILADMIN_X", "yes")
    assert env.env_bool("MAILADMIN_X") is True
    monkeypatch.setenv("MAILADMIN_X", "maybe")
    with pytest.raises(ImproperlyConfigured):
        env.env_bool("MAILADMIN_X")
    monkeypatch.setenv("MAILADMIN_X", "12k")
    with pytest.raises(ImproperlyConfigured):
        env.env_int("MAILADMIN_X", 1)


def test_the_generated_secret_key_is_private_and_stable(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILADMIN_SECRET_KEY", raising=False)
    monkeypatch.delenv("MAILADMIN_SECRET_KEY_FILE", raising=False)
    first = env.secret_key(tmp_path)
    assert len(first) >= 50
    assert stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode) == 0o600
    assert env.secret_key(tmp_path) == first


def test_a_named_secret_key_file_must_exist(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILADMIN_SECRET_KEY", raising=False)
    monkeypatch.setenv("MAILADMIN_SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured):
        env.secret_key(tmp_path)


def test_tasks_run_inline_without_a_broker(settings):
    if settings.CELERY_BROKER_URL:
        pytest.skip("this run configures a broker")
    assert app.conf.task_always_eager is True
    assert settings.DEBUG is False


def test_an_empty_variable_means_the_default(monkeypatch):
    monkeypatch.setenv("MAILADMIN_X", "")
    assert env.env_str("MAILADMIN_X", "fallback") == "fallback"


def test_a_mysql_url_can_name_the_unix_socket():
    db = env.database_from_url("mysql://ro@localhost/mail?socket=/run/mysqld/mysqld.sock")
    assert db["OPTIONS"]["unix_socket"] == "/run/mysqld/mysqld.sock"


# ---------------------------------------------------------------- DNS checks and schedules
#
# The settings module is run afresh (runpy) with the variables under test, as a
# process starting with that environment would; the loaded settings are untouched.

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "mailadmin" / "settings.py"
DNSCHECK_VARIABLES = (
    "MAILADMIN_MX_HOSTS", "MAILADMIN_MAIL_HOSTNAME", "MAILADMIN_PUBLIC_IPV4",
    "MAILADMIN_PUBLIC_IPV6", "MAILADMIN_DNS_RESOLVERS", "MAILADMIN_DNS_TIMEOUT",
    "MAILADMIN_DNS_TRIES", "MAILADMIN_DNS_DOMAIN_BUDGET", "MAILADMIN_DNS_CONCURRENCY",
    "MAILADMIN_DNSBL_ZONES", "MAILADMIN_DNSBL_DOMAIN_ZONES",
    "MAILADMIN_DNSCHECK_RETENTION_DAYS", "MAILADMIN_DNSCHECK_INTERVAL_HOURS",
    "MAILADMIN_DNSCHECK_SPREAD_MINUTES", "MAILADMIN_REPORT_HOUR",
    "MAILADMIN_REPORT_WHEN_UNCHANGED", "MAILADMIN_SMTP_HOST", "MAILADMIN_SMTP_PORT",
    "MAILADMIN_REPORT_FROM", "MAILADMIN_DKIM_RETIRE_GRACE_DAYS", "MAILADMIN_DKIM_CHECK_MINUTES",
    "MAILADMIN_DNS_AUTHORITATIVE_PORT",
)


@pytest.fixture
def load_settings(monkeypatch, tmp_path):
    """The settings as a fresh process with `variables` in its environment gets them."""

    def load(**variables: str) -> dict[str, Any]:
        monkeypatch.setenv("MAILADMIN_DATA_DIR", str(tmp_path))
        for name in DNSCHECK_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(SETTINGS_FILE))

    return load


def refused(load_settings, **variables: str) -> str:
    with pytest.raises(ImproperlyConfigured) as error:
        load_settings(**variables)
    message = str(error.value)
    assert message and "\n" not in message
    return message


def test_the_dnscheck_defaults(load_settings):
    loaded = load_settings(MAILADMIN_MAIL_HOSTNAME="mail.example.org")

    assert loaded["MAILADMIN_MX_HOSTS"] == ["mail.example.org"]
    assert (loaded["MAILADMIN_PUBLIC_IPV4"], loaded["MAILADMIN_PUBLIC_IPV6"]) == ([], [])
    assert loaded["MAILADMIN_DNS_RESOLVERS"] == []
    assert (loaded["MAILADMIN_DNS_TIMEOUT"], loaded["MAILADMIN_DNS_TRIES"]) == (2.0, 2)
    assert loaded["MAILADMIN_DNSBL_ZONES"] == ["zen.spamhaus.org"]
    assert loaded["MAILADMIN_DNSBL_DOMAIN_ZONES"] == ["dbl.spamhaus.org"]
    assert loaded["MAILADMIN_DNSCHECK_RETENTION_DAYS"] == 90
    assert loaded["MAILADMIN_REPORT_WHEN_UNCHANGED"] is False
    schedule = loaded["CELERY_BEAT_SCHEDULE"]
    assert {entry["task"] for entry in schedule.values()} == {
        "dnscheck.check_all", "dnscheck.send_report", "dnscheck.prune_history",
        "domains.sweep_import_jobs", "domains.purge_expired_kept_maildirs",
        "dkim.rotate_all", "domains.sync_quota_usage", "apppasswords.request_usage_sync"}
    assert (loaded["MAILADMIN_DKIM_KEY_DIR"], loaded["MAILADMIN_DKIM_ROTATE_DAYS"],
            loaded["MAILADMIN_DKIM_STALL_DAYS"]) == ("/var/lib/rspamd/dkim", 182, 3)
    assert schedule["dnscheck-all-domains"]["schedule"] == timedelta(hours=6)
    assert schedule["dnscheck-daily-report"]["schedule"] == crontab(hour=7, minute=0)
    assert loaded["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (loaded["EMAIL_HOST"], loaded["EMAIL_PORT"]) == ("localhost", 25)
    assert loaded["DEFAULT_FROM_EMAIL"] == "mailadmin@mail.example.org"


def test_the_dnscheck_settings_come_from_the_environment(load_settings):
    loaded = load_settings(
        MAILADMIN_MX_HOSTS="MX1.Example.org., mx2.example.org",
        MAILADMIN_PUBLIC_IPV4="192.0.2.10, 198.51.100.7",
        MAILADMIN_PUBLIC_IPV6="2001:db8::10",
        MAILADMIN_DNS_RESOLVERS="127.0.0.1@5353,::1",
        MAILADMIN_DNS_TIMEOUT="0.5", MAILADMIN_DNS_TRIES="3",
        MAILADMIN_DNSBL_ZONES="bl.example, b2.example", MAILADMIN_DNSBL_DOMAIN_ZONES="",
        MAILADMIN_DNSCHECK_INTERVAL_HOURS="1.5", MAILADMIN_DNSCHECK_SPREAD_MINUTES="0",
        MAILADMIN_REPORT_HOUR="23", MAILADMIN_REPORT_WHEN_UNCHANGED="yes",
        MAILADMIN_SMTP_HOST="relay.internal", MAILADMIN_SMTP_PORT="2525",
        MAILADMIN_REPORT_FROM="health@example.org",
    )

    assert loaded["MAILADMIN_MX_HOSTS"] == ["mx1.example.org", "mx2.example.org"]
    assert loaded["MAILADMIN_PUBLIC_IPV4"] == ["192.0.2.10", "198.51.100.7"]
    assert loaded["MAILADMIN_PUBLIC_IPV6"] == ["2001:db8::10"]
    assert loaded["MAILADMIN_DNS_RESOLVERS"] == ["127.0.0.1@5353", "::1"]
    assert (loaded["MAILADMIN_DNS_TIMEOUT"], loaded["MAILADMIN_DNS_TRIES"]) == (0.5, 3)
    assert loaded["MAILADMIN_DNSBL_ZONES"] == ["bl.example", "b2.example"]
    assert loaded["MAILADMIN_DNSBL_DOMAIN_ZONES"] == []  # set but empty: none
    schedule = loaded["CELERY_BEAT_SCHEDULE"]
    assert schedule["dnscheck-all-domains"]["schedule"] == timedelta(hours=1.5)
    assert schedule["dnscheck-daily-report"]["schedule"] == crontab(hour=23, minute=0)
    assert loaded["MAILADMIN_DNSCHECK_SPREAD_MINUTES"] == 0
    assert loaded["MAILADMIN_REPORT_WHEN_UNCHANGED"] is True
    assert (loaded["EMAIL_HOST"], loaded["EMAIL_PORT"]) == ("relay.internal", 2525)
    assert loaded["DEFAULT_FROM_EMAIL"] == loaded["SERVER_EMAIL"] == "health@example.org"


@pytest.mark.parametrize(("name", "value", "says"), [
    ("MAILADMIN_PUBLIC_IPV4", "2001:db8::1", "MAILADMIN_PUBLIC_IPV4: '2001:db8::1' is not an "
                                             "IPv4 address"),
    ("MAILADMIN_PUBLIC_IPV4", "nope", "MAILADMIN_PUBLIC_IPV4: 'nope' is not an IPv4 address"),
    ("MAILADMIN_PUBLIC_IPV4", "192.0.2.1, 192.0.2.300", "'192.0.2.300' is not an IPv4"),
    ("MAILADMIN_PUBLIC_IPV4", "192.0.2.0/24", "'192.0.2.0/24' is not an IPv4 address"),
    ("MAILADMIN_PUBLIC_IPV6", "192.0.2.1", "MAILADMIN_PUBLIC_IPV6: '192.0.2.1' is not an "
                                           "IPv6 address"),
    ("MAILADMIN_DNS_TIMEOUT", "0", "MAILADMIN_DNS_TIMEOUT"),
    ("MAILADMIN_DNS_TIMEOUT", "-1", "MAILADMIN_DNS_TIMEOUT"),
    ("MAILADMIN_DNS_TIMEOUT", "soon", "MAILADMIN_DNS_TIMEOUT must be a number"),
    ("MAILADMIN_DNS_TRIES", "0", "MAILADMIN_DNS_TRIES at least 1"),
    ("MAILADMIN_DNS_DOMAIN_BUDGET", "0", "MAILADMIN_DNS_DOMAIN_BUDGET"),
    ("MAILADMIN_REPORT_HOUR", "24", "MAILADMIN_REPORT_HOUR must be 0 to 23"),
    ("MAILADMIN_REPORT_HOUR", "-1", "MAILADMIN_REPORT_HOUR must be 0 to 23"),
    ("MAILADMIN_REPORT_HOUR", "7.5", "MAILADMIN_REPORT_HOUR must be a whole number"),
    ("MAILADMIN_DNSCHECK_INTERVAL_HOURS", "0", "MAILADMIN_DNSCHECK_INTERVAL_HOURS must be "
                                               "above 0"),
    ("MAILADMIN_DNSCHECK_INTERVAL_HOURS", "-6", "MAILADMIN_DNSCHECK_INTERVAL_HOURS"),
    ("MAILADMIN_DNSCHECK_SPREAD_MINUTES", "-1", "MAILADMIN_DNSCHECK_SPREAD_MINUTES not below 0"),
])
def test_a_bad_dnscheck_setting_fails_loudly_in_one_line(load_settings, name, value, says):
    assert says in refused(load_settings, **{name: value})


@pytest.mark.parametrize("value", ["resolver.example", "127.0.0.1@x", "127.0.0.1@0",
                                   "127.0.0.1@70000", "127.0.0.1:53", "192.0.2.1, nope"])
def test_a_bad_resolver_fails_loudly(load_settings, value):
    assert "MAILADMIN_DNS_RESOLVERS: " in refused(load_settings, MAILADMIN_DNS_RESOLVERS=value)


def test_resolvers_are_addresses_with_an_optional_port(load_settings):
    value = "127.0.0.1@5353, ::1, [2001:db8::53]@53"
    assert load_settings(MAILADMIN_DNS_RESOLVERS=value)["MAILADMIN_DNS_RESOLVERS"] == [
        "127.0.0.1@5353", "::1", "[2001:db8::53]@53"]


@pytest.mark.parametrize(("name", "value"), [
    ("MAILADMIN_DNS_TIMEOUT", "nan"), ("MAILADMIN_DNS_TIMEOUT", "inf"),
    ("MAILADMIN_DNS_DOMAIN_BUDGET", "nan"), ("MAILADMIN_DNSCHECK_SPREAD_MINUTES", "nan"),
    ("MAILADMIN_DNSCHECK_INTERVAL_HOURS", "nan"), ("MAILADMIN_DNSCHECK_INTERVAL_HOURS", "inf"),
])
def test_a_number_that_is_not_finite_fails_loudly(load_settings, name, value):
    assert name in refused(load_settings, **{name: value})


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_retention_below_one_day_fails_loudly(load_settings, value):
    assert "MAILADMIN_DNSCHECK_RETENTION_DAYS must be at least 1" in refused(
        load_settings, MAILADMIN_DNSCHECK_RETENTION_DAYS=value)


def test_the_hash_cost_bounds_default_and_come_from_the_environment(load_settings):
    loaded = load_settings(MAILADMIN_BCRYPT_ROUNDS="12")
    assert (loaded["MAILADMIN_MAX_BCRYPT_COST"], loaded["MAILADMIN_MAX_SHA_CRYPT_ROUNDS"],
            loaded["MAILADMIN_MAX_ARGON2_MEMORY_KIB"], loaded["MAILADMIN_MAX_ARGON2_TIME_COST"],
            loaded["MAILADMIN_MAX_ARGON2_PARALLELISM"]) == (13, 700_000, 65536, 4, 8)
    assert load_settings(MAILADMIN_MAX_BCRYPT_COST="11", MAILADMIN_BCRYPT_ROUNDS="10"
                         )["MAILADMIN_MAX_BCRYPT_COST"] == 11


@pytest.mark.parametrize("value", ["7", "73", "100", "0", "-1"])
def test_a_password_minimum_outside_8_to_72_fails_loudly(load_settings, value):
    """BLF-CRYPT takes 72 bytes at most; below 8 is no policy at all."""
    assert "MAILADMIN_PASSWORD_MIN_LENGTH" in refused(
        load_settings, MAILADMIN_PASSWORD_MIN_LENGTH=value)


def test_the_password_minimum_may_be_8_to_72(load_settings):
    assert load_settings()["MAILADMIN_PASSWORD_MIN_LENGTH"] == 12
    for value in (8, 72):
        loaded = load_settings(MAILADMIN_PASSWORD_MIN_LENGTH=str(value))
        assert loaded["MAILADMIN_PASSWORD_MIN_LENGTH"] == value


def test_new_hashes_above_the_bcrypt_bound_fail_loudly(load_settings):
    says = refused(load_settings, MAILADMIN_BCRYPT_ROUNDS="14")
    assert "MAILADMIN_MAX_BCRYPT_COST" in says


def test_the_kept_maildir_grace_period(load_settings):
    assert load_settings()["MAILADMIN_KEPT_MAILDIR_DAYS"] == 30
    assert load_settings(MAILADMIN_KEPT_MAILDIR_DAYS="7")["MAILADMIN_KEPT_MAILDIR_DAYS"] == 7
    assert "at least 1" in refused(load_settings, MAILADMIN_KEPT_MAILDIR_DAYS="0")


@pytest.mark.parametrize(("value", "milter"), [
    ("none", ""), ("", "inet:127.0.0.1:11332"), ("inet:10.0.0.5:11332", "inet:10.0.0.5:11332")])
def test_the_rspamd_milter_is_switched_off_by_none(load_settings, value, milter):
    """An empty variable keeps the default, as for every setting; `none` renders no milter."""
    assert load_settings(MAILADMIN_RSPAMD_MILTER=value)["MAILADMIN_RSPAMD_MILTER"] == milter


def test_the_dkim_defaults_and_their_limits(load_settings):
    loaded = load_settings()
    assert loaded["MAILADMIN_DKIM_RETIRE_GRACE_DAYS"] == 7
    assert loaded["MAILADMIN_DNS_AUTHORITATIVE_PORT"] == 53
    assert loaded["CELERY_BEAT_SCHEDULE"]["dkim-rotate"]["schedule"] == \
        timedelta(minutes=15)
    # Postfix keeps mail queued up to 5 days: a shorter grace would revoke keys too early.
    assert "at least 6" in refused(load_settings, MAILADMIN_DKIM_RETIRE_GRACE_DAYS="5")
    assert "MAILADMIN_DKIM_CHECK_MINUTES" in refused(load_settings,
                                                     MAILADMIN_DKIM_CHECK_MINUTES="0")
    assert "a port" in refused(load_settings, MAILADMIN_DNS_AUTHORITATIVE_PORT="70000")
