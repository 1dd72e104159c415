"""SMTP to the real Postfix lands in the right Maildir through Dovecot LMTP."""

import uuid

import pytest

from domains import selectors, services

pytestmark = pytest.mark.daemons

PW = "correct horse battery"


@pytest.fixture
def mail(stack):
    services.create_domain(actor="t", name="example.org")
    services.create_domain(actor="t", name="catch.test")
    for email in ("bob@example.org", "carol@example.org", "owner@catch.test",
                  "kept@catch.test"):
        services.create_mailbox(actor="t", email=email, password=PW)
    services.create_alias(actor="t", source="team@example.org",
                          destinations="bob@example.org,carol@example.org", checked_domains=None)
    services.create_alias(actor="t", source="@catch.test", destinations="owner@catch.test",
                          checked_domains=None)
    services.create_alias_domain(actor="t", name="alias.example", target="example.org")
    return stack


def marker() -> str:
    return f"marker-{uuid.uuid4().hex}"


def test_it_delivers_to_a_mailbox(mail):
    tag = marker()
    result = mail.send("bob@example.org", body=tag)
    assert result.returncode == 0, result.stdout
    message = mail.wait_for_mail("bob@example.org", tag)
    assert "Delivered-To: bob@example.org" in message


def test_it_delivers_an_alias_to_every_destination(mail):
    tag = marker()
    assert mail.send("team@example.org", body=tag).returncode == 0
    mail.wait_for_mail("bob@example.org", tag)
    mail.wait_for_mail("carol@example.org", tag)


def test_it_delivers_to_an_alias_domain_address(mail):
    tag = marker()
    assert mail.send("carol@alias.example", body=tag).returncode == 0
    mail.wait_for_mail("carol@example.org", tag)


def test_the_catchall_takes_unknown_addresses_but_not_mailboxes(mail):
    unknown, known = marker(), marker()
    assert mail.send("whoever@catch.test", body=unknown).returncode == 0
    assert mail.send("kept@catch.test", body=known).returncode == 0
    mail.wait_for_mail("owner@catch.test", unknown)
    mail.wait_for_mail("kept@catch.test", known)
    assert not any(known in m for m in mail.maildir_messages("owner@catch.test"))


def test_an_unknown_recipient_gets_550_at_rcpt(mail):
    result = mail.send("nobody@example.org")
    assert result.returncode != 0
    assert "<** 550 5.1.1" in result.stdout
    assert "User unknown" in result.stdout


def test_a_disabled_mailbox_is_refused(mail):
    services.set_mailbox_active(actor="t", mailbox=selectors.mailbox_by_email("bob@example.org"),
                                active=False)
    result = mail.send("bob@example.org")
    assert "<** 550 5.1.1" in result.stdout


def test_a_disabled_domain_is_refused_and_comes_back(mail):
    domain = selectors.domain_by_name("example.org")
    services.set_domain_active(actor="t", domain=domain, active=False)
    for address in ("bob@example.org", "team@example.org", "bob@alias.example"):
        result = mail.send(address)
        assert result.returncode != 0
        # 554 relay denied (no longer our domain), or 550 user unknown when a
        # reused smtpd process still has the domain's class in its one-entry cache.
        assert "<** 554 5.7.1" in result.stdout or "<** 550 5.1.1" in result.stdout
    services.set_domain_active(actor="t", domain=domain, active=True)
    tag = marker()
    assert mail.send("bob@example.org", body=tag).returncode == 0
    mail.wait_for_mail("bob@example.org", tag)


def test_deleting_a_mailbox_keeps_its_mail_on_disk(mail):
    tag = marker()
    assert mail.send("carol@example.org", body=tag).returncode == 0
    mail.wait_for_mail("carol@example.org", tag)
    path = services.delete_mailbox(actor="t",
                                   mailbox=selectors.mailbox_by_email("carol@example.org"))
    assert path == str(mail.vmail / "example.org" / "carol")
    assert any(tag in m for m in mail.maildir_messages("carol@example.org"))
    assert "<** 550 5.1.1" in mail.send("carol@example.org").stdout
    # The alias that delivered to carol now delivers to bob only.
    assert selectors.alias_by_source("team@example.org").destinations == "bob@example.org"


def _log_since(mail, offset: int) -> str:
    return (mail.root / "postfix.log").read_text(errors="replace")[offset:]


def _log_size(mail) -> int:
    return len((mail.root / "postfix.log").read_text(errors="replace"))


def _refused_at_rcpt(result) -> bool:
    """The swaks transcript: the 550 answers RCPT TO, and DATA is never sent."""
    lines = result.stdout.splitlines()
    rcpt = next(i for i, line in enumerate(lines) if line.startswith(" -> RCPT TO:"))
    return (lines[rcpt + 1].startswith("<** 550 5.1.1")
            and not any(line.startswith(" -> DATA") for line in lines))


def test_an_alias_with_no_deliverable_destination_is_refused_at_rcpt(mail):
    services.create_domain(actor="t", name="other.test")
    services.create_mailbox(actor="t", email="dave@other.test", password=PW)
    services.create_alias(actor="t", source="onlybob@example.org", destinations="bob@example.org",
                          checked_domains=None)
    services.create_alias(actor="t", source="todave@example.org", destinations="dave@other.test",
                          checked_domains=None)
    services.set_mailbox_active(actor="t", mailbox=selectors.mailbox_by_email("bob@example.org"),
                                active=False)
    services.set_domain_active(actor="t", domain=selectors.domain_by_name("other.test"),
                               active=False)
    # The catch-all's only target is disabled too: unknown addresses are refused.
    services.set_mailbox_active(actor="t", mailbox=selectors.mailbox_by_email("owner@catch.test"),
                                active=False)
    offset = _log_size(mail)

    for address in ("onlybob@example.org", "onlybob@alias.example", "todave@example.org",
                    "whoever@catch.test"):
        result = mail.send(address)
        assert result.returncode != 0, result.stdout
        assert _refused_at_rcpt(result), result.stdout
    log = _log_since(mail, offset)
    assert "status=bounced" not in log, log
    assert "non-delivery notification" not in log, log


def test_a_mixed_alias_delivers_to_its_live_destinations_only(mail):
    services.set_mailbox_active(actor="t", mailbox=selectors.mailbox_by_email("bob@example.org"),
                                active=False)
    offset = _log_size(mail)
    tag = marker()

    result = mail.send("team@example.org", body=tag)

    assert result.returncode == 0, result.stdout
    mail.wait_for_mail("carol@example.org", tag)
    log = _log_since(mail, offset)
    assert "bob@example.org" not in log, log
    assert "status=bounced" not in log, log


def test_postfix_logs_no_missing_alias_database(mail):
    tag = marker()
    assert mail.send("bob@example.org", body=tag).returncode == 0
    mail.wait_for_mail("bob@example.org", tag)

    log = (mail.root / "postfix.log").read_text(errors="replace")
    assert "open database" not in log, log
    assert "/etc/aliases" not in log, log
