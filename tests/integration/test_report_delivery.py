"""The health report goes through the real Postfix, lands with Dovecot, and reads back over IMAP."""

from __future__ import annotations

import contextlib
import email
import imaplib
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default

import pytest
from django.utils import timezone

from accounts import services as account_services
from dnscheck import report, tasks
from dnscheck import services as dnscheck_services
from dnscheck.models import HealthReport
from domains import services
from tests.dnscheck import ERROR, OK, WARNING, make_run
from tests.integration.mailstack import MailStack

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
