"""The health report goes through the real Postfix, lands with Dovecot, and reads back over IMAP."""

from __future__ import annotations

import contextlib
import email
import imaplib
import re
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services as account_services
from dnscheck import report, tasks
from dnscheck import services as dnscheck_services
from dnscheck.models import HealthReport
from domains import services
from tests.dnscheck import ERROR, OK, WARNING, make_run
from tests.integration.mailstack import MailStack, run

pytestmark = pytest.mark.daemons

PW = "correct horse battery"
SPF_RECORD = 'example.org. 3600 IN TXT "v=spf1 mx -all"'
HOSTILE = "<script>alert(1)</script> says the TXT record"


@dataclass
class Reported:
    stack: MailStack
    superadmin: str
    admin: str


@pytest.fixture
def reported(stack, settings) -> Reported:
    """example.org with an admin and a superadmin whose addresses are mailboxes on the stack.

    Its SPF got worse and its DMARC better since a report sent 21 hours ago.
    The addresses are new in each test: the stack's Maildirs outlive a test.
    """
    tag = uuid.uuid4().hex[:8]
    people = Reported(stack=stack, superadmin=f"ops-{tag}@example.org",
                      admin=f"alice-{tag}@example.org")
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", stack.ports["smtp"]
    settings.EMAIL_TIMEOUT = 20
    domain = services.create_domain(actor="t", name="example.org")
    for address in (people.superadmin, people.admin):
        services.create_mailbox(actor="t", email=address, password=PW)
    account_services.create_admin(actor="t", username=people.superadmin, password=PW,
                                  superadmin=True)
    account_services.create_admin(actor="t", username=people.admin, password=PW,
                                  domains=[domain])
    now = timezone.now()
    make_run(domain, [("mx", "", OK), ("spf", "", OK), ("dmarc", "", WARNING, "p=none")],
             finished=now - timedelta(hours=22))
    dnscheck_services.record_report(sent_at=now - timedelta(hours=21), recipients=1, changes=0)
    make_run(domain, [("mx", "", OK), ("spf", "", ERROR, HOSTILE, SPF_RECORD),
                      ("dmarc", "", OK, "p=quarantine")], finished=now - timedelta(minutes=5))
    return people


def read_inbox(stack, user: str, subject: str, timeout: float = 20) -> list[EmailMessage]:
    """The messages with `subject` in `user`'s INBOX, read over IMAP as a mail client would."""
    deadline = time.monotonic() + timeout
    while True:
        imap = imaplib.IMAP4("127.0.0.1", stack.ports["imap"], timeout=20)
        try:
            imap.login(user, PW)
            imap.select("INBOX", readonly=True)
            status, [ids] = imap.search(None, "SUBJECT", f'"{subject}"')
            assert status == "OK"
            messages = []
            for number in ids.split():
                status, data = imap.fetch(number, "(RFC822)")
                assert status == "OK"
                raw = next(part[1] for part in data if isinstance(part, tuple))
                messages.append(email.message_from_bytes(raw, policy=default))
        finally:
            with contextlib.suppress(Exception):
                imap.logout()
        if messages or time.monotonic() > deadline:
            return messages
        time.sleep(0.3)


def parts(message: EmailMessage) -> dict[str, str]:
    found = {}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            found[part.get_content_type()] = part.get_content()
    return found


def test_the_report_is_delivered_and_read_back_over_imap(reported):
    subject = "mailadmin: 1 domain worse, 1 better (example.org)"
    # The beat task, as a worker would run it.
    assert tasks.send_report.apply().get() == 2
    for user in (reported.superadmin, reported.admin):
        reported.stack.wait_for_mail(user, subject)
        [message] = read_inbox(reported.stack, user, subject)
        assert message["Subject"] == subject
        assert message["To"] == user
        assert message.get_content_type() == "multipart/alternative"
        body = parts(message)
        assert set(body) == {"text/plain", "text/html"}
        text, html = body["text/plain"], body["text/html"]
        assert "example.org  spf: ok -> error" in text
        assert text.index("spf: ok -> error") < text.index("dmarc: warning -> ok")
        assert SPF_RECORD in text
        assert HOSTILE in text
        assert html.index(">spf<") < html.index(">dmarc<")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>" not in html
    recorded = HealthReport.objects.latest()
    assert (recorded.recipients, recorded.changes) == (2, 2)


def test_a_redelivered_task_does_not_mail_twice(reported):
    subject = "mailadmin: 1 domain worse, 1 better (example.org)"
    assert tasks.send_report.apply().get() == 2
    assert tasks.send_report.apply().get() == 0
    # Forced, it goes again (and says nothing changed since the last one).
    assert report.send_reports(force=True) == 2
    user = reported.superadmin
    reported.stack.wait_for_mail(user, "mailadmin: DNS health unchanged")
    assert len(read_inbox(reported.stack, user, subject)) == 1
    assert len(read_inbox(reported.stack, user, "DNS health unchanged")) == 1


# ---------------------------------------------------------------- Postfix refusing


@contextlib.contextmanager
def postfix_refusing(stack, address: str):
    """The stack's Postfix answers RCPT TO `address` with a temporary refusal."""
    pf = str(stack.postfix_dir)
    before = run(["postconf", "-c", pf, "-h", "smtpd_recipient_restrictions"]).stdout.strip()
    refusal = f"check_recipient_access inline:{{ {{ {address} = 451 4.3.0 try again later }} }}"
    run(["postconf", "-c", pf, "-e", f"smtpd_recipient_restrictions={refusal}, {before}"])
    run(["postfix", "-c", pf, "reload"])
    try:
        _wait_until_rcpt(stack, address, "451")
        yield
    finally:
        run(["postconf", "-c", pf, "-e", f"smtpd_recipient_restrictions={before}"])
        run(["postfix", "-c", pf, "reload"])
        _wait_until_rcpt(stack, address, "250")


def _wait_until_rcpt(stack, address: str, code: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = stack.swaks("--from", "probe@example.org", "--to", address,
                             "--quit-after", "RCPT").stdout
        # The RCPT answer: swaks marks it "<-" (or "<**" when it is an error).
        if re.search(rf"^<(-|\*\*)\s+{code} .*$", answer.split("RCPT TO", 1)[-1], re.M):
            return
        time.sleep(0.3)
    raise AssertionError(f"postfix never answered {code} for {address}")


def dashboard(user: str) -> str:
    client = Client()
    client.force_login(User.objects.get(username=user))
    response = client.get(reverse("home"))
    assert response.status_code == 200
    return response.content.decode()


def test_a_refused_copy_is_retried_and_each_admin_gets_one(reported, caplog):
    subject = "mailadmin: 1 domain worse, 1 better (example.org)"
    with postfix_refusing(reported.stack, reported.admin):
        # The beat task, as a worker would run it: one copy went, one was refused.
        assert tasks.send_report.apply().get() == 1
        copies = {d.address: d for d in HealthReport.objects.latest().deliveries.all()}
        assert copies[reported.superadmin].state == "sent"
        refused = copies[reported.admin]
        assert (refused.state, refused.attempts) == ("pending", 1)
        assert refused.error.startswith("451 4.3.0")
        # Visible: in the worker's log and on the superadmin's dashboard.
        assert f"not delivered to {reported.admin}" in caplog.text
        page = dashboard(reported.superadmin)
        assert "did not reach everyone" in page and f"{reported.admin}: 451 4.3.0" in page
        # A retry while Postfix still refuses sends nothing twice.
        assert report.send_reports() == 0
    # Postfix accepts again: the retry (Celery's, or the next beat) sends the missing copy.
    assert tasks.send_report.apply().get() == 1
    assert report.send_reports() == 0
    for user in (reported.superadmin, reported.admin):
        reported.stack.wait_for_mail(user, subject)
    time.sleep(1)  # anything sent twice would land by now
    for user in (reported.superadmin, reported.admin):
        assert len(read_inbox(reported.stack, user, subject)) == 1
    recorded = HealthReport.objects.latest()
    assert recorded.recipients == 2
    assert set(recorded.deliveries.values_list("state", flat=True)) == {"sent"}
    assert "did not reach everyone" not in dashboard(reported.superadmin)


def test_a_stopped_postfix_loses_no_report(reported, caplog):
    subject = "mailadmin: 1 domain worse, 1 better (example.org)"
    pf = str(reported.stack.postfix_dir)
    run(["postfix", "-c", pf, "stop"])
    try:
        assert tasks.send_report.apply().get() == 0
    finally:
        run(["postfix", "-c", pf, "start"])
    assert "cannot reach the mail server" in caplog.text
    recorded = HealthReport.objects.latest()
    assert set(recorded.deliveries.values_list("state", flat=True)) == {"pending"}
    assert "cannot reach the mail server" in dashboard(reported.superadmin)
    _wait_until_rcpt(reported.stack, reported.admin, "250")
    assert tasks.send_report.apply().get() == 2
    for user in (reported.superadmin, reported.admin):
        reported.stack.wait_for_mail(user, subject)
    time.sleep(1)
    for user in (reported.superadmin, reported.admin):
        assert len(read_inbox(reported.stack, user, subject)) == 1
