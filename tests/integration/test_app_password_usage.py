"""App passwords' last use, end to end on the real Dovecot and Postfix: the
login check records a login accepted with an app password, the root helper
hands the lines over, the sync records them, the mailbox user's page shows them.
"""

from __future__ import annotations

import io
import time

import pytest
from django.core.management import call_command
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse

from apppasswords import services as apppasswords
from apppasswords.tasks import request_usage_sync
from domains import services
from tests.integration.mailstack import MailStack

pytestmark = pytest.mark.daemons

MAIN = "the main long password 1"
ADDRESS = "una@usage.test"
OTHER = "otto@usage.test"
USAGE_FILE = "app-password-usage"


@pytest.fixture
def mailbox(transactional_db):
    services.create_domain(actor="t", name="usage.test")
    services.create_mailbox(actor="t", email=OTHER, password=MAIN)
    return services.create_mailbox(actor="t", email=ADDRESS, password=MAIN)


def usage_lines(stack: MailStack) -> list[str]:
    directory = stack.root / "app-usage"
    return [line for name in (USAGE_FILE, f"{USAGE_FILE}.taken")
            if (directory / name).exists()
            for line in (directory / name).read_text().splitlines()]


def create(mailbox, name: str, *protocols: str) -> str:
    return apppasswords.create_app_password(actor="t", mailbox=mailbox, name=name,
                                            protocols=list(protocols)).token


def sync() -> str:
    out = io.StringIO()
    call_command("app_password_usage", "sync", stdout=out)
    return out.getvalue()


def test_imap_and_smtp_logins_with_app_passwords_reach_the_users_page(stack, mailbox):
    phone = create(mailbox, "Phone", "imap")
    laptop = create(mailbox, "Laptop", "smtp")
    old = create(mailbox, "Old", "imap")
    apppasswords.revoke_app_password(actor="t", app_password=mailbox.app_passwords.get(
        name="Old"))
    before = int(time.time())

    assert stack.imap_login_ok(ADDRESS, phone)
    sent = stack.submit(login=ADDRESS, password=laptop, sender=ADDRESS, to=OTHER)
    assert sent.returncode == 0 and "235" in sent.stdout, sent.stdout
    lines = usage_lines(stack)
    ids = {row.name: row.pk for row in mailbox.app_passwords.all()}
    assert sorted(line.rsplit(" ", 1)[0] for line in lines) == sorted([
        f"{ids['Phone']} 127.0.0.1 imap", f"{ids['Laptop']} 127.0.0.1 smtp"])
    assert all(before <= int(line.rsplit(" ", 1)[1]) <= time.time() for line in lines)
    # The main password's login and a revoked app password's failed one record
    # nothing; nor does a repeated login answered from Dovecot's auth cache.
    assert stack.imap_login_ok(ADDRESS, MAIN)
    assert not stack.imap_login_ok(ADDRESS, old)
    assert stack.imap_login_ok(ADDRESS, phone)
    assert len(usage_lines(stack)) == 2
    # The file is Dovecot's and nobody else may read it (IP addresses).
    recorded = (stack.root / "app-usage" / USAGE_FILE).stat()
    assert recorded.st_mode & 0o077 == 0

    started = time.monotonic()
    assert "2 lines read, 2 app passwords updated" in sync()
    print(f"sync of 2 lines through the helper: {time.monotonic() - started:.3f} s")
    assert usage_lines(stack) == []  # taken and forgotten
    rows = {row.name: row for row in mailbox.app_passwords.all()}
    assert (rows["Phone"].last_ip, rows["Phone"].last_service) == ("127.0.0.1", "imap")
    assert (rows["Laptop"].last_ip, rows["Laptop"].last_service) == ("127.0.0.1", "smtp")
    assert rows["Old"].last_used is None and rows["Old"].last_ip is None
    assert before <= rows["Phone"].last_used.timestamp() <= time.time()

    client = Client()
    assert client.login(request=HttpRequest(), username=ADDRESS, password=MAIN)
    page = client.get(reverse("apppasswords:own"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "ago from 127.0.0.1 (IMAP)" in text and "ago from 127.0.0.1 (SMTP)" in text
    assert "answered from the server's cache and not recorded" in text

    # A second sync finds nothing; lines written after it are the next one's.
    assert "0 lines read" in sync()
    assert stack.imap_login_ok(ADDRESS, create(mailbox, "Tablet", "imap"))
    request_usage_sync.delay()  # beat's task, inline here: the agent's sync
    assert mailbox.app_passwords.get(name="Tablet").last_service == "imap"


def test_lines_written_between_take_and_done_are_kept(stack, mailbox):
    from mailhost import app_usage

    phone = create(mailbox, "Phone", "imap")
    assert stack.imap_login_ok(ADDRESS, phone)
    taken = app_usage.take()
    assert len(taken.lines) == 1
    stack.flush_auth_cache()  # so the next login runs the check again
    assert stack.imap_login_ok(ADDRESS, phone)  # into a new usage file
    assert app_usage.done(taken) == "removed"
    assert len(usage_lines(stack)) == 1
    assert "1 line read" in sync()
    assert usage_lines(stack) == []


def test_a_full_usage_file_is_not_written_to_and_the_login_still_works(stack, mailbox):
    """With the sync stopped for long the file stops growing at 64 MiB (the login
    check's limit); the login itself is not refused."""
    phone = create(mailbox, "Phone", "imap")
    assert stack.imap_login_ok(ADDRESS, phone)
    usage = stack.root / "app-usage" / USAGE_FILE
    before = usage.stat().st_size
    with usage.open("r+b") as handle:  # sparse: costs no disk
        handle.truncate(64 * 1024 * 1024 + 1)
    stack.flush_auth_cache()
    assert stack.imap_login_ok(ADDRESS, phone)
    assert usage.stat().st_size == 64 * 1024 * 1024 + 1
    with usage.open("r+b") as handle:
        handle.truncate(before)
    stack.flush_auth_cache()
    assert stack.imap_login_ok(ADDRESS, phone)
    assert usage.stat().st_size > before
