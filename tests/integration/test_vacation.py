"""The panel's auto-reply and forwarding on real Postfix + Dovecot LMTP + Pigeonhole.

Replies and forwards leave Dovecot through the stack's Postfix
(submission_host in the stack's wrapper), so they land in local Maildirs:
the sender here is a mailbox of another domain of the panel.
"""

import datetime
import time
import uuid

import pytest

from core.actor import Actor
from domains import services
from vacation import services as vacation

pytestmark = pytest.mark.daemons

PW = "correct horse battery"
ADMIN = Actor.account("admin")


@pytest.fixture
def mail(stack):
    services.create_domain(actor="t", name="example.org")
    services.create_domain(actor="t", name="outside.test")
    for email in ("bob@example.org", "carol@example.org", "sender@outside.test",
                  "other@outside.test", "target@outside.test"):
        services.create_mailbox(actor="t", email=email, password=PW)
    services.create_alias(actor="t", source="help@example.org",
                          destinations="bob@example.org", checked_domains=None)
    return stack


def marker() -> str:
    return f"marker-{uuid.uuid4().hex}"


def replies(stack, to: str, subject: str) -> list[str]:
    """Auto-replies with this subject in `to`'s Maildir (the stack's Maildirs
    outlive each test's rows, so each test's reply has a subject of its own)."""
    return [m for m in stack.maildir_messages(to)
            if "Auto-Submitted: auto-replied" in m and f"Subject: {subject}" in m]


def settle(stack, seconds: float = 2.0) -> None:
    """Long enough for a reply that would be sent to arrive (each is a local hop)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        stack.run_queue()
        time.sleep(0.2)


def send(stack, to: str, sender: str, tag: str, headers: tuple[str, ...] = ()):
    args = ["--from", sender, "--to", to, "--header", f"To: {to}",
            "--header", f"Subject: {tag}", "--body", tag]
    for header in headers:
        args += ["--add-header", header]
    result = stack.swaks(*args)
    assert result.returncode == 0, result.stdout
    return result


def set_reply(mailbox_email: str, **kwargs) -> str:
    """Switch the reply on; returns its subject, unique to this call."""
    from domains.models import Mailbox
    today = datetime.date.today()
    subject = f"Away {marker()}"
    vacation.set_auto_reply(actor=ADMIN, mailbox=Mailbox.objects.get(email=mailbox_email),
                            enabled=True, subject=subject,
                            text="I am away.\nBack on Monday.", days=7,
                            start=kwargs.get("start", today - datetime.timedelta(days=1)),
                            end=kwargs.get("end", today + datetime.timedelta(days=3)))
    return subject


def test_one_reply_per_sender_within_the_period_and_for_an_alias(mail):
    subject = set_reply("bob@example.org")
    first, second, third = marker(), marker(), marker()
    send(mail, "bob@example.org", "sender@outside.test", first)
    mail.wait_for_mail("bob@example.org", first)
    reply = mail.wait_for_mail("sender@outside.test", subject)
    assert "Back on Monday." in reply
    assert "From: bob@example.org" in reply or "From: <bob@example.org>" in reply
    send(mail, "bob@example.org", "sender@outside.test", second)
    mail.wait_for_mail("bob@example.org", second)
    settle(mail)
    assert len(replies(mail, "sender@outside.test", subject)) == 1
    # Another sender writing to the mailbox's alias gets their own one reply.
    send(mail, "help@example.org", "other@outside.test", third)
    mail.wait_for_mail("bob@example.org", third)
    mail.wait_for_mail("other@outside.test", subject)


def test_no_reply_after_the_last_day_nor_before_the_first(mail):
    today = datetime.date.today()
    past = set_reply("bob@example.org", start=today - datetime.timedelta(days=9),
                     end=today - datetime.timedelta(days=2))
    future = set_reply("carol@example.org", start=today + datetime.timedelta(days=2), end=None)
    tags = marker(), marker()
    send(mail, "bob@example.org", "sender@outside.test", tags[0])
    send(mail, "carol@example.org", "sender@outside.test", tags[1])
    mail.wait_for_mail("bob@example.org", tags[0])
    mail.wait_for_mail("carol@example.org", tags[1])
    settle(mail)
    assert replies(mail, "sender@outside.test", past) == []
    assert replies(mail, "sender@outside.test", future) == []


@pytest.mark.parametrize("headers", [
    ("List-Id: <announce.lists.outside.test>",),
    ("Precedence: bulk",),
    ("Auto-Submitted: auto-generated",),
])
def test_no_reply_to_lists_bulk_or_automatic_mail(mail, headers):
    subject = set_reply("bob@example.org")
    tag = marker()
    send(mail, "bob@example.org", "sender@outside.test", tag, headers)
    mail.wait_for_mail("bob@example.org", tag)
    settle(mail)
    assert replies(mail, "sender@outside.test", subject) == []
    # The same sender without those headers is answered: it was the headers.
    send(mail, "bob@example.org", "sender@outside.test", marker())
    mail.wait_for_mail("sender@outside.test", subject)


def test_forward_with_a_copy_lands_in_both_places(mail):
    from domains.models import Mailbox
    vacation.set_forwarding(actor=ADMIN, mailbox=Mailbox.objects.get(email="bob@example.org"),
                            forward_to="target@outside.test", keep=True)
    tag = marker()
    send(mail, "bob@example.org", "sender@outside.test", tag)
    mail.wait_for_mail("bob@example.org", tag)
    forwarded = mail.wait_for_mail("target@outside.test", tag)
    # The envelope sender is the mailbox's (SPF is checked against our domain).
    assert "Return-Path: <bob@example.org>" in forwarded


def test_forward_without_a_copy_lands_only_at_the_target(mail):
    from domains.models import Mailbox
    vacation.set_forwarding(actor=ADMIN, mailbox=Mailbox.objects.get(email="bob@example.org"),
                            forward_to="target@outside.test, carol@example.org", keep=False)
    tag = marker()
    send(mail, "bob@example.org", "sender@outside.test", tag)
    mail.wait_for_mail("target@outside.test", tag)
    mail.wait_for_mail("carol@example.org", tag)
    settle(mail)
    assert not any(tag in m for m in mail.maildir_messages("bob@example.org"))


def test_switching_everything_off_removes_the_script_and_delivery_is_plain(mail):
    from domains.models import Mailbox
    from vacation.models import SieveScript
    bob = Mailbox.objects.get(email="bob@example.org")
    subject = set_reply("bob@example.org")
    vacation.set_auto_reply(actor=ADMIN, mailbox=bob, enabled=False, subject="", text="")
    assert not SieveScript.objects.filter(mailbox=bob).exists()
    tag = marker()
    send(mail, "bob@example.org", "sender@outside.test", tag)
    mail.wait_for_mail("bob@example.org", tag)
    settle(mail)
    assert replies(mail, "sender@outside.test", subject) == []




def test_an_alias_made_after_the_reply_is_answered_once_and_unlisted_when_deleted(mail):
    """Postfix gives Dovecot's LMTP only the mailbox (no ORCPT: no DSN is announced),
    so Pigeonhole answers an alias only if the script lists it: the alias's
    creation must rewrite the script saved before it."""
    from domains.models import Alias
    from vacation.models import SieveScript
    subject = set_reply("carol@example.org")
    services.create_alias(actor="t", source="late@example.org",
                          destinations="carol@example.org", checked_domains=None)
    services.create_alias(actor="t", source="team@example.org",
                          destinations="bob@example.org,carol@example.org,other@outside.test",
                          checked_domains=None)
    first, second, again = marker(), marker(), marker()
    send(mail, "late@example.org", "sender@outside.test", first)
    send(mail, "team@example.org", "target@outside.test", second)
    mail.wait_for_mail("carol@example.org", first)
    mail.wait_for_mail("carol@example.org", second)
    mail.wait_for_mail("bob@example.org", second)
    # A second message within the period: still one reply to each sender.
    send(mail, "late@example.org", "sender@outside.test", again)
    mail.wait_for_mail("carol@example.org", again)
    settle(mail)
    assert len(replies(mail, "sender@outside.test", subject)) == 1
    assert len(replies(mail, "target@outside.test", subject)) == 1
    services.delete_alias(actor="t", alias=Alias.objects.get(source="late@example.org"))
    script = SieveScript.objects.get(username="carol@example.org").script
    assert '"team@example.org"' in script and "late@example.org" not in script
