"""The submission port authenticates through Dovecot and enforces the sender-login map."""

import uuid

import pytest

from domains import services

pytestmark = pytest.mark.daemons

PW = "correct horse battery"


@pytest.fixture
def mail(stack):
    services.create_domain(actor="t", name="example.org")
    services.create_mailbox(actor="t", email="bob@example.org", password=PW)
    services.create_mailbox(actor="t", email="carol@example.org", password=PW)
    services.create_alias(actor="t", source="sales@example.org", destinations="bob@example.org",
                          checked_domains=None)
    services.create_alias(actor="t", source="@example.org", destinations="carol@example.org",
                          checked_domains=None)
    services.create_alias_domain(actor="t", name="alias.example", target="example.org")
    return stack


def test_bob_sends_as_himself_and_his_aliases(mail):
    for sender in ("bob@example.org", "sales@example.org", "bob@alias.example",
                   "sales@alias.example"):
        tag = f"marker-{uuid.uuid4().hex}"
        result = mail.swaks("--tls", "--auth", "PLAIN", "--auth-user", "bob@example.org",
                            "--auth-password", PW, "--from", sender,
                            "--to", "carol@example.org", "--body", tag, port="submission")
        assert result.returncode == 0, (sender, result.stdout)
        mail.wait_for_mail("carol@example.org", tag)


def test_bob_cannot_send_as_someone_else(mail):
    for sender in ("carol@example.org", "nobody@example.org", "carol@alias.example",
                   "someone@outside.test"):
        result = mail.submit(login="bob@example.org", password=PW, sender=sender,
                             to="carol@example.org")
        assert result.returncode != 0, sender
        assert "Sender address rejected: not owned by user bob@example.org" in result.stdout


def test_the_catchall_owner_cannot_send_as_anything(mail):
    result = mail.submit(login="carol@example.org", password=PW,
                         sender="whatever@example.org", to="bob@example.org")
    assert "Sender address rejected" in result.stdout


def test_a_wrong_password_or_no_login_is_refused(mail):
    wrong = mail.submit(login="bob@example.org", password="wrong", sender="bob@example.org",
                        to="carol@example.org")
    assert "535" in wrong.stdout
    anonymous = mail.swaks("--tls", "--from", "bob@example.org", "--to", "carol@example.org",
                           port="submission")
    assert anonymous.returncode != 0
    assert "554 5.7.1" in anonymous.stdout
