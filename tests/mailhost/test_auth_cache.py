"""Dovecot's auth cache: rendered, and flushed after every change to a login.

The flush runs the root helper on the mail host's agent once the change
commits; here run_helper is replaced by a recorder (the helper itself is in
test_helper.py, the flush against the real Dovecot in
tests/integration/test_auth_cache.py).
"""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.actor import Actor
from domains import services
from domains.models import Mailbox
from mailhost import auth_cache, privileged, render
from mailhost.models import MailHost

ACTOR = Actor.cli()


# ---------------------------------------------------------------- rendered


def rendered_dovecot() -> str:
    files = render.render(render.RenderOptions(
        host=MailHost.current(), database=render.daemon_database(MailHost.current())))
    return files["dovecot/conf.d/90-mailadmin.conf"]


@pytest.mark.django_db
def test_the_rendered_dovecot_config_has_an_auth_cache_with_the_settings(live, settings):
    text = rendered_dovecot()
    assert "auth_cache_size = 10M\n" in text
    assert "auth_cache_ttl = 1 hour\n" in text
    assert "auth_cache_negative_ttl = 1 min\n" in text
    assert "auth_cache_verify_password_with_worker = yes\n" in text
    settings.MAILADMIN_DOVECOT_AUTH_CACHE_SIZE = "0"
    settings.MAILADMIN_DOVECOT_AUTH_CACHE_TTL = "10 mins"
    text = rendered_dovecot()
    assert "auth_cache_size = 0\n" in text and "auth_cache_ttl = 10 mins\n" in text


@pytest.mark.django_db
def test_passwords_are_checked_by_the_lua_passdb_behind_an_uncached_lookup(live, settings):
    text = rendered_dovecot()
    lua = settings.MAILADMIN_DOVECOT_LOGIN_CACHE
    assert lua.endswith("deploy/dovecot/mailadmin-login-cache.lua")
    sql, app_sql, lua_passdb = text.split("passdb {")[1:4]
    assert "result_success = continue\n" in sql and "result_failure = return-fail\n" in sql
    # The app-password lookup in between: no row is no verdict.
    assert "dovecot-sql-app-passwords.conf.ext" in app_sql
    assert "result_failure = continue\n" in app_sql
    # Keyed by the stored hashes: an entry never answers for a changed password
    # or a revoked app password.
    assert (f"args = file={lua} blocking=yes cache_key=%u%{{userdb:mailadmin_stored}}"
            "%{userdb:mailadmin_app_stored}\n" in lua_passdb)
    assert ("override_fields = mailadmin_stored:remove= mailadmin_app_stored:remove= "
            "mailadmin_app_id:remove= mailadmin_app_usage:remove=\n" in text)
    query = render.dovecot_queries("sqlite", MailHost.current(), login_cache=True)
    assert query["password_query"].startswith(
        "SELECT u.email AS user, NULL AS password, CASE WHEN d.require_app_passwords = 0 "
        "THEN u.password END AS userdb_mailadmin_stored, 'Y' AS noauthenticate FROM users")


@pytest.mark.django_db
def test_none_renders_the_plain_sql_passdb(live, settings):
    settings.MAILADMIN_DOVECOT_LOGIN_CACHE = ""
    text = rendered_dovecot()
    assert "driver = lua" not in text and "mailadmin_stored" not in text
    # The main SQL passdb, then the app passwords' one.
    assert text.count("passdb {") == 2


@pytest.mark.django_db
def test_a_missing_script_or_lua_module_is_refused_with_what_to_do(live, settings, tmp_path):
    settings.MAILADMIN_DOVECOT_LOGIN_CACHE = str(tmp_path / "absent.lua")
    with pytest.raises(ImproperlyConfigured, match=r"no such file .*or set it to none"):
        rendered_dovecot()
    settings.MAILADMIN_DOVECOT_LOGIN_CACHE = str(tmp_path / "here.lua")
    (tmp_path / "here.lua").write_text("-- a script\n")
    settings.MAILADMIN_DOVECOT_MODULE_DIR = str(tmp_path / "modules")
    with pytest.raises(ImproperlyConfigured, match="apt install dovecot-auth-lua"):
        rendered_dovecot()


@pytest.mark.django_db
def test_imap_processes_are_reused_and_login_processes_only_when_asked(live, settings):
    text = rendered_dovecot()
    assert "service imap {\n  service_count = 100\n}\n" in text
    assert "service imap-login" not in text
    settings.MAILADMIN_DOVECOT_LOGIN_MODE = "high-performance"
    text = rendered_dovecot()
    assert "service imap-login {\n  service_count = 0\n  process_min_avail = " in text


# ---------------------------------------------------------------- the flush itself


@pytest.fixture
def logged():
    """What mailhost.auth_cache logs, through a handler of its own: an eager task
    runs under Celery's logging setup, which caplog does not always see."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    auth_cache.logger.addHandler(handler)
    level = auth_cache.logger.level
    auth_cache.logger.setLevel(logging.INFO)
    yield records
    auth_cache.logger.removeHandler(handler)
    auth_cache.logger.setLevel(level)


@pytest.fixture
def helper_calls(monkeypatch, settings):
    """run_helper recorded instead of run; a host with a helper."""
    settings.MAILADMIN_HELPER_COMMAND = ["/usr/local/libexec/mailadmin-helper"]
    calls: list[tuple[str, ...]] = []

    def record(verb: str, *args: str) -> str:
        calls.append((verb, *args))
        return f"{len(args)} cache entries flushed\n"

    monkeypatch.setattr(privileged, "run_helper", record)
    return calls


def test_flush_runs_the_helper_once_per_batch_of_addresses(helper_calls):
    addresses = [f"user{n:03}@example.org" for n in range(250)]
    assert auth_cache.flush(addresses + addresses[:5]) == 250
    assert [len(call) - 1 for call in helper_calls] == [100, 100, 50]
    assert {call[0] for call in helper_calls} == {"flush-auth-cache"}
    assert sorted(a for call in helper_calls for a in call[1:]) == addresses


def test_a_failed_flush_is_logged_and_never_raised(monkeypatch, settings, logged):
    settings.MAILADMIN_HELPER_COMMAND = ["/usr/local/libexec/mailadmin-helper"]

    def fail(verb: str, *args: str) -> str:
        raise privileged.HelperError("flush-auth-cache: Error: connect(auth-master) failed")

    monkeypatch.setattr(privileged, "run_helper", fail)
    assert auth_cache.flush(["bob@example.org"]) == 0
    [record] = logged
    assert record.levelno == logging.ERROR
    assert "NOT flushed for bob@example.org" in record.getMessage()
    assert "connect(auth-master) failed" in record.getMessage()
    assert "an old password keeps working" in record.getMessage()


def test_a_host_without_a_helper_skips_the_flush_quietly(settings, logged):
    settings.MAILADMIN_HELPER_COMMAND = []
    assert auth_cache.flush(["bob@example.org"]) == 0
    [record] = logged
    assert record.levelno == logging.INFO and "no root helper" in record.getMessage()


def test_run_helper_without_a_helper_says_so(settings):
    settings.MAILADMIN_HELPER_COMMAND = []
    assert not privileged.has_helper()
    with pytest.raises(privileged.NoHelper, match="no root helper"):
        privileged.run_helper("reload", "postfix")


def test_none_in_the_environment_means_no_helper(monkeypatch):
    import importlib

    from mailadmin import settings as module

    monkeypatch.setenv("MAILADMIN_HELPER_COMMAND", "none")
    try:
        assert importlib.reload(module).MAILADMIN_HELPER_COMMAND == []
    finally:
        monkeypatch.delenv("MAILADMIN_HELPER_COMMAND")
        importlib.reload(module)


def test_an_auth_cache_setting_that_is_not_one_token_is_refused(monkeypatch):
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    from mailadmin import settings as module

    monkeypatch.setenv("MAILADMIN_DOVECOT_AUTH_CACHE_TTL", "1 hour\nauth_mechanisms = anonymous")
    try:
        with pytest.raises(ImproperlyConfigured, match="MAILADMIN_DOVECOT_AUTH_CACHE_TTL"):
            importlib.reload(module)
    finally:
        monkeypatch.delenv("MAILADMIN_DOVECOT_AUTH_CACHE_TTL")
        importlib.reload(module)


# ---------------------------------------------------------------- who asks for it


def flushed() -> list[list[str]]:
    """The addresses each change hands to the agent once it commits (the test's
    transaction never commits: its pending on-commit callbacks are read)."""
    from django.db import connection

    return [list(func.args[0]) for _savepoints, func, *_robust in connection.run_on_commit
            if getattr(func, "func", None) is auth_cache.send]


@pytest.mark.django_db
def test_the_flush_goes_to_the_hosts_queue(monkeypatch):
    calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []
    monkeypatch.setattr(auth_cache, "enqueue_on_commit",
                        lambda task, *args, **options: calls.append((task, args, options)))
    auth_cache.send(["bob@example.org"])
    assert calls == [("mailhost.flush_auth_cache", (["bob@example.org"],),
                      {"queue": MailHost.current().queue})]


@pytest.mark.django_db
def test_a_password_change_flushes_the_mailbox(world):
    services.set_mailbox_password(actor=ACTOR, mailbox=world.bob, password="a new long secret 1")
    assert flushed() == [["bob@a.example"]]


@pytest.mark.django_db
def test_the_users_own_password_change_flushes_it(world):
    from tests.conftest import MAILBOX_PASSWORD

    services.change_own_password(mailbox=world.bob, current=MAILBOX_PASSWORD,
                                 new="my own new secret 42")
    assert flushed() == [["bob@a.example"]]


@pytest.mark.django_db
def test_update_mailbox_flushes_on_what_dovecot_reads_only(world):
    services.update_mailbox(actor=ACTOR, mailbox=world.bob, name="Bob")
    assert flushed() == []
    services.update_mailbox(actor=ACTOR, mailbox=world.bob, active=True)
    assert flushed() == []
    services.update_mailbox(actor=ACTOR, mailbox=world.bob, active=False)
    services.update_mailbox(actor=ACTOR, mailbox=world.bob, password="another long secret 7")
    # The quota rule is a userdb field, and Dovecot caches the userdb answer too.
    services.update_mailbox(actor=ACTOR, mailbox=world.bob, quota="2G")
    assert flushed() == [["bob@a.example"]] * 3


@pytest.mark.django_db
def test_disabling_and_enabling_a_mailbox_flush_it(world):
    services.set_mailbox_active(actor=ACTOR, mailbox=world.bob, active=True)
    assert flushed() == []
    services.set_mailbox_active(actor=ACTOR, mailbox=world.bob, active=False)
    services.set_mailbox_active(actor=ACTOR, mailbox=world.bob, active=True)
    assert flushed() == [["bob@a.example"], ["bob@a.example"]]


@pytest.mark.django_db
def test_deleting_a_mailbox_flushes_it(world):
    services.delete_mailbox(actor=ACTOR, mailbox=world.bob)
    assert flushed() == [["bob@a.example"]]


@pytest.mark.django_db
def test_disabling_a_domain_flushes_all_its_mailboxes(world):
    services.create_mailbox(actor=ACTOR, email="al@a.example", password="a long secret 123")
    services.set_domain_active(actor=ACTOR, domain=world.a, active=False)
    assert flushed() == [["al@a.example", "bob@a.example"]]
    services.set_domain_active(actor=ACTOR, domain=world.a, active=False)
    assert len(flushed()) == 1


@pytest.mark.django_db
def test_deleting_a_domain_flushes_all_its_mailboxes(world):
    services.delete_domain(actor=ACTOR, domain=world.a, force=True)
    assert flushed() == [["bob@a.example"]]


@pytest.mark.django_db
def test_creating_a_mailbox_or_editing_an_alias_flushes_nothing(world):
    services.create_mailbox(actor=ACTOR, email="new@a.example", password="a long secret 123")
    services.delete_alias(actor=ACTOR, alias=world.a.aliases.get())
    assert flushed() == []


# ---------------------------------------------------------------- after commit, never undoing


@pytest.mark.django_db(transaction=True)
def test_the_flush_runs_after_commit_and_a_failure_keeps_the_change(
        world, monkeypatch, settings, logged):
    settings.MAILADMIN_HELPER_COMMAND = ["/usr/local/libexec/mailadmin-helper"]
    seen: list[str] = []

    def fail(verb: str, *args: str) -> str:
        # The change is committed by the time the agent runs the flush.
        seen.append(Mailbox.objects.get(email="bob@a.example").password)
        raise privileged.HelperError("sudo: a password is required")

    monkeypatch.setattr(privileged, "run_helper", fail)
    changed = services.set_mailbox_password(actor=ACTOR, mailbox=world.bob,
                                            password="a new long secret 1")
    assert seen == [changed.password]
    assert Mailbox.objects.get(email="bob@a.example").password == changed.password
    assert [r.levelno for r in logged] == [logging.ERROR]
    assert "NOT flushed for bob@a.example: sudo: a password is required" in (
        logged[0].getMessage())
