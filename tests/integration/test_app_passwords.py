"""App passwords on the real Dovecot and Postfix, in both renderings: the
Lua login check (the default) and the plain SQL passdb
(MAILADMIN_DOVECOT_LOGIN_CACHE=none). The auth cache is on in both.

The app password's passdb finds one row at most (by the unique `lookup`,
the salted hash Dovecot computes from the typed password: no password in
the query text), checks it is live, allowed for the asking service (%s) and
belongs to an active mailbox of an active domain.
"""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from apppasswords import services as apppasswords
from domains import services
from mailhost import app_password_lookup
from tests.integration.mailstack import mail_stack

pytestmark = pytest.mark.daemons

MAIN = "the main long password 1"
ADDRESS = "ann@apps.test"
OTHER = "otto@apps.test"


@pytest.fixture(scope="module")
def plain_stack_session(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), override_settings(MAILADMIN_DOVECOT_LOGIN_CACHE=""), \
            mail_stack() as stack:
        yield stack


@pytest.fixture(params=["lua", "plain"])
def mode_stack(request, mailstack_session, transactional_db):
    session = (mailstack_session if request.param == "lua"
               else request.getfixturevalue("plain_stack_session"))
    rendered = (session.etc / "dovecot" / "conf.d" / "90-mailadmin.conf").read_text()
    assert ("driver = lua" in rendered) == (request.param == "lua")
    assert "dovecot-sql-app-passwords.conf.ext" in rendered
    session.flush_auth_cache()
    with override_settings(**session.overrides):
        yield session


@pytest.fixture
def mailbox(transactional_db):
    services.create_domain(actor="t", name="apps.test")
    services.create_mailbox(actor="t", email=OTHER, password=MAIN)
    return services.create_mailbox(actor="t", email=ADDRESS, password=MAIN)


def auth(stack, user: str, password: str, service: str) -> bool:
    result = stack.doveadm("auth", "test", "-x", f"service={service}", user, password)
    return "auth succeeded" in result.stdout + result.stderr


def create(mailbox, *protocols: str) -> str:
    return apppasswords.create_app_password(actor="t", mailbox=mailbox, name="+".join(protocols),
                                            protocols=list(protocols)).token


def test_an_app_password_works_for_its_protocols_only(mode_stack, mailbox):
    imap_only, smtp_only, sieve_only = (create(mailbox, p) for p in ("imap", "smtp", "sieve"))
    assert auth(mode_stack, ADDRESS, imap_only, "imap")
    assert not auth(mode_stack, ADDRESS, imap_only, "smtp")
    assert not auth(mode_stack, ADDRESS, imap_only, "sieve")
    assert auth(mode_stack, ADDRESS, smtp_only, "smtp")
    assert not auth(mode_stack, ADDRESS, smtp_only, "imap")
    assert auth(mode_stack, ADDRESS, sieve_only, "sieve")
    assert not auth(mode_stack, ADDRESS, sieve_only, "imap")
    # The main password still works everywhere; a wrong secret behind a real
    # selector, and someone else's app password under this name, do not.
    for service in ("imap", "smtp", "sieve"):
        assert auth(mode_stack, ADDRESS, MAIN, service)
    assert not auth(mode_stack, ADDRESS, imap_only[:8] + "x" * 24, "imap")
    assert not auth(mode_stack, OTHER, imap_only, "imap")
    assert mode_stack.imap_login_ok(ADDRESS, imap_only)
    assert not mode_stack.imap_login_ok(ADDRESS, smtp_only)


def test_the_rendered_query_carries_the_typed_password_only_hashed(mode_stack, mailbox):
    rendered = (mode_stack.etc / "dovecot" / "dovecot-sql-app-passwords.conf.ext").read_text()
    [query] = [line for line in rendered.splitlines() if line.startswith("password_query")]
    hashed = f"%{{sha256;salt={app_password_lookup.lookup_salt()}:password}}"
    assert query.count(hashed) == 1 and f"a.lookup = '{hashed}'" in query
    rest = query.replace(hashed, "")
    # No other expansion of the typed password: %w, %{password}, %{...:password},
    # %{password:...} (%s, %u and text are all that is left).
    assert "%w" not in rest and not re.search(r"%\{[^}]*password", rest)
    assert set(re.findall(r"%\{?[^\s']", rest)) <= {"%s", "%u"}
    # A login through it works (the hash is what Dovecot computes).
    assert auth(mode_stack, ADDRESS, create(mailbox, "imap"), "imap")


def test_a_revoked_app_password_fails_at_the_very_next_login(mode_stack, mailbox):
    token = create(mailbox, "imap", "smtp")
    assert mode_stack.imap_login_ok(ADDRESS, token)  # now in the auth cache
    assert mode_stack.imap_login_ok(ADDRESS, token)
    row = mailbox.app_passwords.get()
    apppasswords.revoke_app_password(actor="t", app_password=row)
    assert not mode_stack.imap_login_ok(ADDRESS, token)
    assert not auth(mode_stack, ADDRESS, token, "smtp")
    assert mode_stack.imap_login_ok(ADDRESS, MAIN)


def test_a_disabled_mailbox_fails_with_every_password(mode_stack, mailbox):
    token = create(mailbox, "imap", "smtp", "sieve")
    assert mode_stack.imap_login_ok(ADDRESS, token)
    services.set_mailbox_active(actor="t", mailbox=mailbox, active=False)
    for password in (MAIN, token):
        assert not mode_stack.imap_login_ok(ADDRESS, password)
        for service in ("imap", "smtp", "sieve"):
            assert not auth(mode_stack, ADDRESS, password, service)


def test_a_domain_that_requires_app_passwords_refuses_the_main_one(mode_stack, mailbox):
    token = create(mailbox, "imap")
    assert mode_stack.imap_login_ok(ADDRESS, MAIN)  # cached, then flushed by the switch
    apppasswords.set_app_passwords_required(actor="t", domain=mailbox.domain, required=True)
    assert not mode_stack.imap_login_ok(ADDRESS, MAIN)
    assert not auth(mode_stack, ADDRESS, MAIN, "smtp")
    assert mode_stack.imap_login_ok(ADDRESS, token)
    apppasswords.set_app_passwords_required(actor="t", domain=mailbox.domain, required=False)
    assert mode_stack.imap_login_ok(ADDRESS, MAIN)


def test_submission_accepts_an_smtp_app_password_only(stack, mailbox):
    smtp = create(mailbox, "smtp")
    imap = create(mailbox, "imap")
    sent = stack.submit(login=ADDRESS, password=smtp, sender=ADDRESS, to=OTHER)
    assert sent.returncode == 0, sent.stdout
    assert "235" in sent.stdout
    refused = stack.submit(login=ADDRESS, password=imap, sender=ADDRESS, to=OTHER)
    assert refused.returncode != 0 and "535" in refused.stdout
    stack.wait_for_mail(OTHER, "Subject")


def test_the_hashes_reach_neither_the_login_nor_the_mail_process(stack, mailbox):
    token = create(mailbox, "imap")
    stored = mailbox.app_passwords.get().password
    login = stack.doveadm("auth", "login", "-x", "service=imap", ADDRESS, token)
    assert login.returncode == 0, login.stdout + login.stderr
    assert "mailadmin_app_stored" not in login.stdout and stored not in login.stdout


def test_with_the_login_check_a_revocation_holds_even_without_a_flush(stack, mailbox, settings):
    # The Lua check's cache key holds the app password's hash, which only a
    # live row hands over; the flush is the belt to these braces.
    token = create(mailbox, "imap")
    assert stack.imap_login_ok(ADDRESS, token)
    assert stack.imap_login_ok(ADDRESS, token)
    settings.MAILADMIN_HELPER_COMMAND = []  # this host has no helper: nothing is flushed
    apppasswords.revoke_app_password(actor="t", app_password=mailbox.app_passwords.get())
    assert not stack.imap_login_ok(ADDRESS, token)
