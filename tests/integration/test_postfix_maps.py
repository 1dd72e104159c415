"""Every Postfix map answers as the daemons will see it: `postmap -q` on the rendered files."""

import pytest

from domains import selectors, services

pytestmark = pytest.mark.daemons

PW = "correct horse battery"


@pytest.fixture
def mail(stack):
    services.create_domain(actor="t", name="example.org")
    services.create_domain(actor="t", name="other.test")
    for email in ("bob@example.org", "carol@example.org", "dave@other.test"):
        services.create_mailbox(actor="t", email=email, password=PW)
    services.create_alias(actor="t", source="info@example.org",
                          destinations="bob@example.org,carol@example.org,ext@outside.net",
                          checked_domains=None)
    services.create_alias(actor="t", source="@other.test", destinations="dave@other.test",
                          checked_domains=None)
    services.create_alias_domain(actor="t", name="alias.example", target="example.org")
    services.create_alias_domain(actor="t", name="alias-other.test", target="other.test")
    return stack


def test_it_answers_for_domains_and_alias_domains(mail):
    assert mail.postmap("example.org", "domains.cf") == "1"
    assert mail.postmap("alias.example", "domains.cf") == "1"
    assert mail.postmap("unknown.org", "domains.cf") is None


def test_it_answers_for_mailboxes(mail):
    assert mail.postmap("bob@example.org", "mailboxes.cf") == "1"
    assert mail.postmap("nobody@example.org", "mailboxes.cf") is None
    # Postfix folds keys to lowercase; the rows are stored lowercase.
    assert mail.postmap("Bob@Example.ORG", "mailboxes.cf") == "1"


def test_it_expands_aliases_with_every_destination(mail):
    answer = mail.virtual_alias("info@example.org")
    assert answer is not None
    assert sorted(answer.split(",")) == [
        "bob@example.org", "carol@example.org", "ext@outside.net"]


def test_it_resolves_alias_domain_addresses_in_sql(mail):
    assert mail.virtual_alias("bob@alias.example") == "bob@example.org"
    assert mail.virtual_alias("info@alias.example") == (
        "bob@example.org,carol@example.org,ext@outside.net")
    assert mail.virtual_alias("nobody@alias.example") is None


def test_a_mailbox_wins_over_the_catchall(mail):
    # Postfix tries the full address in every map before the @domain key.
    assert mail.virtual_alias("dave@other.test") == "dave@other.test"
    assert mail.postmap("@other.test", "aliases.cf") == "dave@other.test"
    # Through an alias domain: the mailbox answers for the full address,
    # the catch-all only for the @alias-domain key.
    assert mail.virtual_alias("dave@alias-other.test") == "dave@other.test"
    assert mail.postmap("random@alias-other.test", "aliasdomain-catchall.cf") is None
    assert mail.postmap("@alias-other.test", "aliasdomain-catchall.cf") == "dave@other.test"


def test_disabled_objects_answer_nothing(mail):
    services.set_mailbox_active(actor="t", mailbox=selectors.mailbox_by_email("bob@example.org"),
                                active=False)
    services.update_alias(actor="t", alias=selectors.alias_by_source("info@example.org"),
                          active=False, checked_domains=None)
    services.set_alias_domain_active(
        actor="t", alias_domain=selectors.alias_domain_by_name("alias-other.test"), active=False)
    assert mail.postmap("bob@example.org", "mailboxes.cf") is None
    assert mail.virtual_alias("bob@example.org") is None
    assert mail.virtual_alias("info@example.org") is None
    assert mail.postmap("alias-other.test", "domains.cf") is None
    assert mail.postmap("@alias-other.test", "aliasdomain-catchall.cf") is None
    assert mail.sender_owners("bob@example.org") is None


def test_a_disabled_domain_answers_nothing_and_comes_back(mail):
    domain = selectors.domain_by_name("example.org")
    services.set_domain_active(actor="t", domain=domain, active=False)
    for key, map_name in [
        ("example.org", "domains.cf"), ("alias.example", "domains.cf"),
        ("bob@example.org", "mailboxes.cf"), ("info@example.org", "aliases.cf"),
        ("bob@alias.example", "aliasdomain-mailboxes.cf"),
        ("bob@example.org", "sender-login.cf"),
        ("bob@alias.example", "aliasdomain-sender-login.cf"),
    ]:
        assert mail.postmap(key, map_name) is None, (key, map_name)
    services.set_domain_active(actor="t", domain=domain, active=True)
    assert mail.postmap("bob@example.org", "mailboxes.cf") == "1"
    assert mail.virtual_alias("bob@alias.example") == "bob@example.org"


def test_sender_login_names_the_owners(mail):
    assert mail.sender_owners("bob@example.org") == "bob@example.org"
    owners = mail.sender_owners("info@example.org")
    assert owners is not None and "bob@example.org" in owners.split(",")
    assert mail.sender_owners("bob@alias.example") == "bob@example.org"
    owners = mail.sender_owners("info@alias.example")
    assert owners is not None and "carol@example.org" in owners.split(",")
    # A catch-all makes nobody the owner of every address in the domain.
    assert mail.sender_owners("random@other.test") is None
    assert mail.sender_owners("@other.test") is None
