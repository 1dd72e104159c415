"""The settings layer: safe defaults, loud failures, no secrets in the repository."""

import os
import stat

import pytest
from django.core.exceptions import ImproperlyConfigured

from mailadmin import env
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
