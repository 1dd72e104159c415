"""Quota usage as Dovecot counts it reaches the panel, and Dovecot warns the user.

Dovecot's quota_clone writes each mailbox's usage through its dict process
into `quota_usage` (MariaDB: the panel's table, as the daemons' user; SQLite:
Dovecot's own file, which `manage.py quota_usage sync` copies in).
"""

from __future__ import annotations

import io
import json
import smtplib
import sqlite3
import time

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.urls import reverse

from domains import services
from domains.models import QuotaUsage

pytestmark = pytest.mark.daemons
# The stack's Maildirs outlive each test's rows: these addresses are used only here.

PW = "correct horse battery"


@pytest.fixture
def domain(stack):
    return services.create_domain(actor="t", name="example.org")


def deliver(stack, to: str, body: str, subject: str = "big") -> None:
    message = f"Subject: {subject}\r\nFrom: a@outside.test\r\n\r\n{body}\r\n"
    with smtplib.LMTP(str(stack.lmtp_socket), timeout=20) as lmtp:
        assert lmtp.sendmail("a@outside.test", [to], message) == {}


def dovecot_bytes(stack, email: str) -> int:
    rows = json.loads(stack.doveadm("-f", "json", "quota", "get", "-u", email, check=True).stdout)
    return int(next(r["value"] for r in rows if r["type"] == "STORAGE")) * 1024


def written_usage(stack, email: str, at_least: int) -> int:
    """The bytes Dovecot wrote for `email` (the panel's table, after a sync on SQLite)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if stack.dialect == "sqlite":
            with sqlite3.connect(stack.overrides["MAILADMIN_DOVECOT_QUOTA_DB"]) as db:
                row = db.execute("SELECT bytes FROM quota_usage WHERE username = ?",
                                 (email,)).fetchone()
            if row and row[0] >= at_least:
                call_command("quota_usage", "sync", stdout=io.StringIO())
        row = QuotaUsage.objects.filter(username=email).values_list("bytes", flat=True).first()
        if row is not None and row >= at_least:
            return int(row)
        time.sleep(0.2)
    raise AssertionError(f"no usage for {email} in quota_usage; dovecot log:\n"
                         f"{stack.tail('dovecot.log')}")


def test_300_kb_delivered_over_lmtp_shows_as_300_kb_used(stack, domain, client):
    services.create_mailbox(actor="t", email="q300@example.org", password=PW, quota="10M")
    for n in range(3):
        deliver(stack, "q300@example.org", ("x" * 998 + "\r\n") * 100, subject=f"part {n}")
    used = written_usage(stack, "q300@example.org", 300_000)
    assert 300_000 <= used < 310_000, used
    # The same figure Dovecot itself reports (it counts in KiB).
    assert abs(used - dovecot_bytes(stack, "q300@example.org")) < 1024
    assert QuotaUsage.objects.get(username="q300@example.org").messages == 3

    # The mailbox user's own page and the admin's lists show it.
    assert client.login(request=HttpRequest(), username="q300@example.org", password=PW)
    shown = client.get(reverse("accounts:me")).content.decode()
    assert f"{filesizeformat(used)} / 10.0\xa0MB" in shown, shown
    client.logout()
    admin = User.objects.create_superuser("root", "root@example.org", "x" * 20)
    client.force_login(admin)
    for url in (reverse("domains:mailbox-list"),
                reverse("domains:domain-detail", args=["example.org"]),
                reverse("domains:mailbox-edit", args=["q300@example.org"])):
        page = client.get(url).content.decode()
        assert f'value="{used}"' in page, url  # the meter's value is the bytes Dovecot wrote


def test_a_full_mailbox_shows_in_the_near_full_list(stack, domain, client):
    services.create_mailbox(actor="t", email="nearfull@example.org", password=PW, quota="100K")
    services.create_mailbox(actor="t", email="q-roomy@example.org", password=PW, quota="10M")
    deliver(stack, "nearfull@example.org", "y" * 95_000)
    deliver(stack, "q-roomy@example.org", "y" * 95_000)
    written_usage(stack, "nearfull@example.org", 95_000)
    written_usage(stack, "q-roomy@example.org", 95_000)
    client.force_login(User.objects.create_superuser("root", "root@example.org", "x" * 20))
    page = client.get(reverse("domains:mailbox-list") + "?usage=near").content.decode()
    assert "nearfull@example.org" in page
    assert "q-roomy@example.org" not in page


def test_crossing_80_percent_mails_the_user_a_warning(stack, domain):
    services.create_mailbox(actor="t", email="warned@example.org", password=PW, quota="100K")
    deliver(stack, "warned@example.org", "z" * 50_000, subject="half")
    assert not [m for m in stack.maildir_messages("warned@example.org") if "full" in m]
    deliver(stack, "warned@example.org", "z" * 35_000, subject="over eighty")
    try:
        warning = stack.wait_for_mail("warned@example.org", "Your mailbox is 80% full")
    except AssertionError:
        raise AssertionError(f"no warning; dovecot log:\n{stack.tail('dovecot.log')}") from None
    assert "Auto-Submitted: auto-generated" in warning
    assert "From: Mail system <postmaster@example.org>" in warning
    # Nothing else: the 95 % level was not crossed, and the notice itself (which
    # adds to the usage) warns about nothing.
    assert not [m for m in stack.maildir_messages("warned@example.org") if "95% full" in m]


def test_a_jump_past_95_percent_sends_only_the_95_percent_warning(stack, domain):
    services.create_mailbox(actor="t", email="jumped@example.org", password=PW, quota="100K")
    deliver(stack, "jumped@example.org", "w" * 99_000, subject="at once")
    try:
        stack.wait_for_mail("jumped@example.org", "Your mailbox is 95% full")
    except AssertionError:
        raise AssertionError(f"no warning; dovecot log:\n{stack.tail('dovecot.log')}") from None
    # Dovecot runs only the first level crossed (quota_warning before quota_warning2).
    assert not [m for m in stack.maildir_messages("jumped@example.org") if "80% full" in m]


def test_the_notice_itself_never_warns_again(stack, domain):
    """94.8 % after delivery: the 80 % notice (some 600 bytes) takes the mailbox past
    95 %; saving it must not run the 95 % warning (as it did before the script
    turned the warnings off for its own delivery)."""
    services.create_mailbox(actor="t", email="edge@example.org", password=PW, quota="100K")
    deliver(stack, "edge@example.org", "v" * 97_000, subject="edge")
    stack.wait_for_mail("edge@example.org", "Your mailbox is 80% full")
    time.sleep(2)
    assert not [m for m in stack.maildir_messages("edge@example.org") if "95% full" in m]
    assert dovecot_bytes(stack, "edge@example.org") >= 95 * 1024
