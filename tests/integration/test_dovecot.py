"""Dovecot authenticates from users.password and applies users.quota."""

import io
import smtplib
import sys

import pytest
from django.core.management import call_command
from django.http import HttpRequest
from passlib.hash import argon2, bcrypt, sha512_crypt

from domains import selectors, services

pytestmark = pytest.mark.daemons

PW = "correct horse battery"


@pytest.fixture
def domain(stack):
    return services.create_domain(actor="t", name="example.org")


def cli(monkeypatch, *args: str, stdin: str = "") -> str:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_the_command_line_password_signs_in(stack, domain, monkeypatch):
    cli(monkeypatch, "mailbox", "add", "bob@example.org", "--password-stdin",
        stdin=PW + "\n")
    assert stack.auth_ok("bob@example.org", PW)
    assert stack.auth_ok("Bob@Example.org", PW)  # auth_username_format = %Lu
    assert not stack.auth_ok("bob@example.org", PW + "x")
    assert not stack.auth_ok("nobody@example.org", PW)


@pytest.mark.parametrize("scheme, crypt", [
    ("BLF-CRYPT", lambda pw: bcrypt.using(ident="2y", rounds=5).hash(pw)),
    ("SHA512-CRYPT", lambda pw: sha512_crypt.hash(pw)),
    ("ARGON2ID", lambda pw: argon2.using(type="ID", memory_cost=1024).hash(pw)),
])
def test_imported_hashes_sign_in(stack, domain, scheme, crypt):
    services.create_mailbox(actor="t", email="imported@example.org",
                            password_hash=f"{{{scheme}}}{crypt(PW)}")
    assert stack.auth_ok("imported@example.org", PW)
    assert not stack.auth_ok("imported@example.org", "wrong password")


def test_disabled_mailbox_and_domain_cannot_sign_in(stack, domain):
    mailbox = services.create_mailbox(actor="t", email="bob@example.org", password=PW)
    services.set_mailbox_active(actor="t", mailbox=mailbox, active=False)
    assert not stack.auth_ok("bob@example.org", PW)
    services.set_mailbox_active(actor="t", mailbox=mailbox, active=True)
    services.set_domain_active(actor="t", domain=domain, active=False)
    assert not stack.auth_ok("bob@example.org", PW)
    assert not stack.imap_login_ok("bob@example.org", PW)
    services.set_domain_active(actor="t", domain=domain, active=True)
    assert stack.imap_login_ok("bob@example.org", PW)


def test_imap_takes_the_new_password_at_once(stack, domain, monkeypatch):
    services.create_mailbox(actor="t", email="bob@example.org", password=PW)
    assert stack.imap_login_ok("bob@example.org", PW)
    new = "a much better passphrase"
    output = cli(monkeypatch, "mailbox", "passwd", "bob@example.org", "--password-stdin",
                 stdin=new + "\n")
    assert new not in output
    # No reload: Dovecot reads the row on the next login.
    assert stack.imap_login_ok("bob@example.org", new)
    assert not stack.imap_login_ok("bob@example.org", PW)


def test_the_quota_reaches_dovecot_and_is_enforced(stack, domain):
    services.create_mailbox(actor="t", email="small@example.org", password=PW, quota="20K")
    user = stack.doveadm("user", "small@example.org")
    assert "quota_rule\t*:bytes=20480" in user.stdout, user.stdout
    assert f"home\t{stack.vmail}/example.org/small" in user.stdout
    services.update_mailbox(actor="t", mailbox=selectors.mailbox_by_email("small@example.org"),
                            quota="40K")
    assert "*:bytes=40960" in stack.doveadm("user", "small@example.org").stdout

    body = "x" * 30_000
    message = f"Subject: big\r\n\r\n{body}\r\n"
    with smtplib.LMTP(str(stack.lmtp_socket), timeout=20) as lmtp:
        assert lmtp.sendmail("a@outside.test", ["small@example.org"], message) == {}
        with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPRecipientsRefused)) as refused:
            lmtp.sendmail("a@outside.test", ["small@example.org"], message)
    assert "Quota exceeded" in str(refused.value)
    quota = stack.doveadm("quota", "get", "-u", "small@example.org").stdout
    assert "STORAGE" in quota
    assert len(stack.maildir_messages("small@example.org")) == 1


def test_an_unlimited_quota_is_unlimited(stack, domain):
    services.create_mailbox(actor="t", email="big@example.org", password=PW, quota=0)
    body = "y" * 200_000
    with smtplib.LMTP(str(stack.lmtp_socket), timeout=20) as lmtp:
        for _ in range(3):
            lmtp.sendmail("a@outside.test", ["big@example.org"], f"Subject: b\r\n\r\n{body}")
    assert len(stack.maildir_messages("big@example.org")) == 3


def test_a_password_changed_in_the_panel_works_over_imap_at_once(stack, domain, client):
    services.create_mailbox(actor="t", email="bob@example.org", password=PW)
    assert client.login(request=HttpRequest(), username="bob@example.org", password=PW)
    new = "a much better passphrase"
    response = client.post("/me/password/", {"current": PW, "new": new, "new_again": new})
    assert response.status_code == 302
    assert stack.imap_login_ok("bob@example.org", new)
    assert not stack.imap_login_ok("bob@example.org", PW)
