"""domains.services: every write, allowed and refused, checked against the database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from passlib.hash import argon2, bcrypt, sha512_crypt

from core.models import AuditEntry
from domains import passwords, services
from domains.models import Alias, AliasDomain, Domain, Mailbox
from domains.services import MailboxImport
from tests.conftest import change_host

pytestmark = pytest.mark.django_db

ACTOR = "admin@panel"
PASSWORD = "s3cret-Passw0rd!"
OTHER_PASSWORD = "an0ther-Passw0rd?"
GIB = 1024**3
MIB = 1024**2
MODELS = (Domain, Mailbox, Alias, AliasDomain, AuditEntry)
HASH_MARKERS = ("{BLF-CRYPT}", "{SHA512-CRYPT}", "{ARGON2", "$2y$", "$2b$", "$2a$", "$6$",
                "$5$", "$argon2")

_SHA512 = sha512_crypt.using(rounds=1000)
_ARGON2ID = argon2.using(type="ID", memory_cost=1024, rounds=1, parallelism=1)


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.MAILADMIN_BCRYPT_ROUNDS = 4
    settings.MAILADMIN_PASSWORD_SCHEME = "BLF-CRYPT"
    settings.MAILADMIN_VMAIL_DIR = "/var/vmail"


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def assert_audit_is_clean() -> None:
    for row in AuditEntry.objects.all():
        for part in (row.before, row.after):
            assert "password" not in set(_keys(part)), (row.action, part)
            text = json.dumps(part)
            for marker in HASH_MARKERS:
                assert marker not in text, (row.action, part)
        assert PASSWORD not in row.object_repr
        assert PASSWORD not in json.dumps([row.before, row.after])
        assert OTHER_PASSWORD not in json.dumps([row.before, row.after])


@pytest.fixture(autouse=True)
def _audit_never_holds_secrets(db):
    yield
    assert_audit_is_clean()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def db_state() -> dict[str, list[dict[str, Any]]]:
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in MODELS}


@contextmanager
def refused(*fragments: str) -> Iterator[Any]:
    """The block raises ValidationError naming `fragments`; no row changed."""
    before_counts = counts()
    before = db_state()
    with pytest.raises(ValidationError) as exc:
        yield exc
    assert counts() == before_counts
    assert db_state() == before
    text = " ".join(exc.value.messages)
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def audit_rows(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def fresh(obj: Any) -> Any:
    return type(obj).objects.get(pk=obj.pk)


def make_domain(name: str = "example.org", **kwargs: Any) -> Domain:
    return services.create_domain(actor=ACTOR, name=name, **kwargs)


def make_mailbox(email: str, **kwargs: Any) -> Mailbox:
    if "password_hash" not in kwargs:
        kwargs.setdefault("password", PASSWORD)
    return services.create_mailbox(actor=ACTOR, email=email, **kwargs)


def make_alias(source: str, destinations: Any, **kwargs: Any) -> Alias:
    kwargs.setdefault("checked_domains", None)
    return services.create_alias(actor=ACTOR, source=source, destinations=destinations, **kwargs)


@pytest.fixture
def domain() -> Domain:
    return make_domain("example.org")


@pytest.fixture
def mailbox(domain: Domain) -> Mailbox:
    return make_mailbox("bob@example.org")


# ---------------------------------------------------------------- create_domain


def test_it_creates_a_domain_in_punycode_and_audits_it():
    created = make_domain("Exämple.ORG.", description="  Shop  ")
    row = Domain.objects.get()
    assert row.pk == created.pk
    assert row.name == "xn--exmple-cua.org"
    assert row.description == "Shop"
    assert row.active is True
    assert (row.max_mailboxes, row.max_aliases, row.max_quota, row.default_quota) == (0, 0, 0, 0)
    [entry] = audit_rows("domain.create")
    assert entry.actor == ACTOR
    assert entry.object_type == "domain"
    assert entry.object_id == row.pk
    assert entry.object_repr == "xn--exmple-cua.org"
    assert entry.domain == "xn--exmple-cua.org"
    assert entry.before is None
    assert entry.after["name"] == "xn--exmple-cua.org"
    assert entry.after["active"] is True


def test_it_parses_domain_limits():
    make_domain("example.org", max_mailboxes="5", max_aliases=7, max_quota="10G",
                default_quota="512M", active=False)
    row = Domain.objects.get(name="example.org")
    assert row.max_mailboxes == 5
    assert row.max_aliases == 7
    assert row.max_quota == 10 * GIB
    assert row.default_quota == 512 * MIB
    assert row.active is False
    assert audit_rows("domain.create")[0].after["max_quota"] == 10 * GIB


def test_it_refuses_a_duplicate_domain(domain):
    with refused("The domain example.org already exists."):
        make_domain("EXAMPLE.org.")


def test_it_refuses_a_duplicate_idn_domain():
    make_domain("xn--exmple-cua.org")
    with refused("already exists"):
        make_domain("exämple.org")


def test_it_refuses_a_domain_named_like_an_alias_domain(domain):
    services.create_alias_domain(actor=ACTOR, name="example.net", target=domain)
    with refused("example.net is already an alias domain."):
        make_domain("Example.NET")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "localhost"}, "needs at least one dot"),
        ({"name": "exa mple.org"}, "not a valid domain name"),
        ({"name": ""}, "A domain name is required"),
        ({"name": "new.org", "max_quota": "10G"}, "needs a default mailbox quota"),
        ({"name": "new.org", "max_quota": "1G", "default_quota": "2G"},
         "default mailbox quota is larger"),
        ({"name": "new.org", "max_mailboxes": -1}, "between 0 (no limit)"),
        ({"name": "new.org", "max_aliases": 2**31}, "between 0 (no limit)"),
        ({"name": "new.org", "max_mailboxes": "many"}, "must be a whole number"),
        ({"name": "new.org", "max_aliases": None}, "must be a whole number"),
        ({"name": "new.org", "max_quota": "abc"}, "is not a size"),
        ({"name": "new.org", "default_quota": -5}, "cannot be negative"),
        ({"name": "new.org", "description": "x\ny"}, "cannot contain control characters"),
        ({"name": "new.org", "description": "x" * 256}, "at most 255 characters"),
        ({"name": "new.org", "description": None}, "must be text"),
    ],
)
def test_it_refuses_bad_domain_input(domain, kwargs, fragment):
    with refused(fragment):
        services.create_domain(actor=ACTOR, **kwargs)


# ---------------------------------------------------------------- update_domain


def test_it_updates_a_domain_and_audits_only_the_changes(domain):
    services.update_domain(actor=ACTOR, domain=domain, description="Main", max_mailboxes=10,
                           max_quota="20G", default_quota="1G")
    row = fresh(domain)
    assert row.description == "Main"
    assert row.max_mailboxes == 10
    assert row.max_aliases == 0
    assert row.max_quota == 20 * GIB
    assert row.default_quota == GIB
    [entry] = audit_rows("domain.update")
    assert entry.before == {"description": "", "max_mailboxes": 0, "max_quota": 0,
                            "default_quota": 0}
    assert entry.after == {"description": "Main", "max_mailboxes": 10, "max_quota": 20 * GIB,
                           "default_quota": GIB}


def test_an_update_without_changes_writes_no_audit_row(domain):
    services.update_domain(actor=ACTOR, domain=domain, description="")
    assert audit_rows("domain.update") == []


def test_it_cannot_lower_max_mailboxes_below_the_count(domain):
    make_mailbox("a@example.org")
    make_mailbox("b@example.org")
    with refused("example.org has 2 mailboxes; the limit cannot be lower."):
        services.update_domain(actor=ACTOR, domain=domain, max_mailboxes=1)
    services.update_domain(actor=ACTOR, domain=domain, max_mailboxes=2)
    assert fresh(domain).max_mailboxes == 2


def test_it_cannot_lower_max_aliases_below_the_count(domain, mailbox):
    make_alias("a@example.org", "bob@example.org")
    make_alias("b@example.org", "bob@example.org")
    with refused("example.org has 2 aliases; the limit cannot be lower."):
        services.update_domain(actor=ACTOR, domain=domain, max_aliases=1)
    services.update_domain(actor=ACTOR, domain=domain, max_aliases=3)
    assert fresh(domain).max_aliases == 3


def test_max_quota_needs_a_quota_on_every_mailbox(domain):
    unlimited = make_mailbox("a@example.org")
    make_mailbox("b@example.org", quota="1G")
    assert unlimited.quota == 0
    with refused("example.org has 1 mailboxes without a quota"):
        services.update_domain(actor=ACTOR, domain=domain, max_quota="10G", default_quota="1G")
    services.update_mailbox(actor=ACTOR, mailbox=unlimited, quota="2G")
    services.update_domain(actor=ACTOR, domain=domain, max_quota="10G", default_quota="1G")
    row = fresh(domain)
    assert (row.max_quota, row.default_quota) == (10 * GIB, GIB)


def test_max_quota_cannot_be_lower_than_the_allocated_total(domain):
    make_mailbox("a@example.org", quota="2G")
    make_mailbox("b@example.org", quota="2G")
    with refused("mailboxes already hold 4G of quota"):
        services.update_domain(actor=ACTOR, domain=domain, max_quota="3G", default_quota="1G")
    services.update_domain(actor=ACTOR, domain=domain, max_quota="4G", default_quota="1G")
    assert fresh(domain).max_quota == 4 * GIB


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_quota": "5G"}, "needs a default mailbox quota"),
        ({"description": "a\rb"}, "control characters"),
        ({"max_mailboxes": "x"}, "whole number"),
        ({"default_quota": "lots"}, "is not a size"),
    ],
)
def test_it_refuses_bad_domain_updates(domain, kwargs, fragment):
    with refused(fragment):
        services.update_domain(actor=ACTOR, domain=domain, **kwargs)


def test_it_refuses_to_update_a_deleted_domain(domain):
    stale = Domain.objects.get(pk=domain.pk)
    services.delete_domain(actor=ACTOR, domain=domain)
    with refused("The domain example.org no longer exists."):
        services.update_domain(actor=ACTOR, domain=stale, description="x")
    with refused("no longer exists"):
        services.set_domain_active(actor=ACTOR, domain=stale, active=False)
    with refused("no longer exists"):
        services.delete_domain(actor=ACTOR, domain=stale)


# ---------------------------------------------------------------- set_domain_active


def test_it_disables_and_enables_a_domain(domain):
    services.set_domain_active(actor=ACTOR, domain=domain, active=False)
    assert fresh(domain).active is False
    [entry] = audit_rows("domain.disable")
    assert entry.before == {"active": True}
    assert entry.after == {"active": False}
    assert entry.domain == "example.org"
    assert entry.object_id == domain.pk

    services.set_domain_active(actor=ACTOR, domain=domain, active=False)
    assert len(audit_rows("domain.disable")) == 1

    services.set_domain_active(actor=ACTOR, domain=domain, active=True)
    assert fresh(domain).active is True
    [entry] = audit_rows("domain.enable")
    assert (entry.before, entry.after) == ({"active": False}, {"active": True})


def test_enabling_an_active_domain_writes_nothing(domain):
    before = db_state()
    services.set_domain_active(actor=ACTOR, domain=domain, active=True)
    assert db_state() == before


# ---------------------------------------------------------------- delete_domain


def test_it_deletes_an_empty_domain(domain):
    assert services.delete_domain(actor=ACTOR, domain=domain) == []
    assert not Domain.objects.exists()
    [entry] = audit_rows("domain.delete")
    assert entry.before["name"] == "example.org"
    assert entry.after == {"forced": False, "maildirs_kept": 0}


def test_it_refuses_to_delete_a_domain_with_mailboxes(domain):
    make_mailbox("a@example.org")
    make_mailbox("b@example.org")
    with refused("example.org still has 2 mailboxes"):
        services.delete_domain(actor=ACTOR, domain=domain)
    with refused("still has 2 mailboxes"):
        services.delete_domain(actor=ACTOR, domain=domain, force=False)


def test_a_domain_with_only_aliases_is_deleted_without_force(domain):
    make_alias("a@example.org", "someone@elsewhere.net")
    services.create_alias_domain(actor=ACTOR, name="example.net", target=domain)
    assert services.delete_domain(actor=ACTOR, domain=domain) == []
    assert counts() == {"Domain": 0, "Mailbox": 0, "Alias": 0, "AliasDomain": 0,
                        "AuditEntry": counts()["AuditEntry"]}
    assert len(audit_rows("alias.delete")) == 1
    assert len(audit_rows("aliasdomain.delete")) == 1


def test_forced_delete_removes_everything_and_returns_the_maildirs(domain, settings):
    settings.MAILADMIN_VMAIL_DIR = "/srv/mail/"
    other = make_domain("other.org")
    keep = make_mailbox("keep@other.org")
    bob = make_mailbox("bob@example.org")
    alice = make_mailbox("alice@example.org")
    make_alias("team@example.org", ["bob@example.org", "alice@example.org"])
    make_alias("@example.org", "bob@example.org")
    services.create_alias_domain(actor=ACTOR, name="example.net", target=domain)
    services.create_alias_domain(actor=ACTOR, name="other.net", target=other)

    kept = services.delete_domain(actor=ACTOR, domain=domain, force=True)

    assert sorted(kept) == ["/srv/mail/example.org/alice", "/srv/mail/example.org/bob"]
    assert list(Domain.objects.values_list("name", flat=True)) == ["other.org"]
    assert list(Mailbox.objects.values_list("email", flat=True)) == ["keep@other.org"]
    assert not Alias.objects.exists()
    assert list(AliasDomain.objects.values_list("name", flat=True)) == ["other.net"]
    assert fresh(keep).password

    mailbox_rows = {e.object_id: e for e in audit_rows("mailbox.delete")}
    assert set(mailbox_rows) == {bob.pk, alice.pk}
    assert mailbox_rows[bob.pk].after == {"maildir_kept": "/srv/mail/example.org/bob"}
    assert mailbox_rows[alice.pk].after == {"maildir_kept": "/srv/mail/example.org/alice"}
    assert mailbox_rows[bob.pk].before["email"] == "bob@example.org"
    assert {e.object_repr for e in audit_rows("alias.delete")} == {"team@example.org",
                                                                    "@example.org"}
    assert [e.object_repr for e in audit_rows("aliasdomain.delete")] == ["example.net"]
    [entry] = audit_rows("domain.delete")
    assert entry.after == {"forced": True, "maildirs_kept": 2}
    assert all(e.domain == "example.org" for e in AuditEntry.objects.filter(
        action__endswith=".delete"))


def test_forced_domain_delete_cleans_other_aliases(domain):
    make_domain("other.org")
    make_mailbox("bob@example.org")
    make_mailbox("keep@other.org")
    make_alias("list@other.org", ["bob@example.org", "keep@other.org"])
    services.delete_domain(actor=ACTOR, domain=domain, force=True)
    assert Alias.objects.get(source="list@other.org").destinations == "keep@other.org"


# ---------------------------------------------------------------- create_mailbox


def test_it_creates_a_mailbox(domain):
    created = make_mailbox("Bob@Example.ORG", name="  Bob Smith ")
    row = Mailbox.objects.get()
    assert row.pk == created.pk
    assert row.email == "bob@example.org"
    assert row.domain_id == domain.pk
    assert row.name == "Bob Smith"
    assert row.quota == 0
    assert row.active is True
    assert row.password_changed is not None
    assert row.password.startswith("{BLF-CRYPT}$2y$04$")
    assert passwords.verify_password(PASSWORD, row.password)
    [entry] = audit_rows("mailbox.create")
    assert entry.object_id == row.pk
    assert entry.domain == "example.org"
    assert entry.after["email"] == "bob@example.org"
    assert "password" not in entry.after


def test_a_mailbox_gets_the_domains_default_quota():
    make_domain("example.org", default_quota="512M")
    make_mailbox("a@example.org")
    make_mailbox("b@example.org", quota="2G")
    make_mailbox("c@example.org", quota=0)
    quotas = dict(Mailbox.objects.values_list("email", "quota"))
    assert quotas == {"a@example.org": 512 * MIB, "b@example.org": 2 * GIB, "c@example.org": 0}


def test_it_creates_a_mailbox_in_an_idn_domain():
    make_domain("exämple.org")
    make_mailbox("Info@EXÄMPLE.org")
    assert Mailbox.objects.get().email == "info@xn--exmple-cua.org"


def test_it_creates_a_mailbox_from_an_imported_hash(domain):
    crypt = _SHA512.hash(PASSWORD)
    make_mailbox("bob@example.org", password_hash=crypt)
    row = Mailbox.objects.get()
    assert row.password == "{SHA512-CRYPT}" + crypt
    assert passwords.verify_password(PASSWORD, row.password)


def test_it_creates_a_disabled_mailbox(domain):
    make_mailbox("bob@example.org", active=False)
    assert Mailbox.objects.get().active is False


def test_it_refuses_a_mailbox_beyond_max_mailboxes():
    make_domain("example.org", max_mailboxes=2)
    make_mailbox("a@example.org")
    make_mailbox("b@example.org")
    with refused("example.org has reached its limit of 2 mailboxes."):
        make_mailbox("c@example.org")


def test_it_refuses_a_mailbox_beyond_max_quota():
    make_domain("example.org", max_quota="2G", default_quota="1G")
    make_mailbox("a@example.org")
    assert Mailbox.objects.get().quota == GIB
    with refused("example.org has 1G quota left of 2G; 1536M does not fit."):
        make_mailbox("b@example.org", quota="1.5G")
    with refused("every mailbox needs a quota"):
        make_mailbox("b@example.org", quota=0)
    make_mailbox("b@example.org")
    with refused("example.org has no quota left of 2G; 1G does not fit."):
        make_mailbox("c@example.org")


def test_it_refuses_an_address_that_is_already_an_alias(domain, mailbox):
    make_alias("info@example.org", "bob@example.org")
    with refused("info@example.org is already an alias."):
        make_mailbox("INFO@example.org")


def test_it_refuses_an_existing_mailbox(domain, mailbox):
    with refused("bob@example.org is already a mailbox."):
        make_mailbox("Bob@Example.org")


def test_it_refuses_a_mailbox_in_an_unknown_domain(domain):
    with refused("unknown.org is not a domain of this server."):
        make_mailbox("bob@unknown.org")


def test_it_refuses_a_mailbox_in_an_alias_domain_naming_the_target(domain):
    services.create_alias_domain(actor=ACTOR, name="example.net", target=domain)
    with refused("example.net is an alias domain of example.org", "live in example.org"):
        make_mailbox("bob@example.net")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"email": "a" * 65 + "@example.org"}, "at most 64 are allowed"),
        ({"email": "bad..dots@example.org"}, "is not a valid address"),
        ({"email": "@example.org"}, "has no local part"),
        ({"email": "no-at-sign"}, "is not a mail address"),
        ({"email": "x@example.org", "password": None}, "Give either a password or a password hash"),
        ({"email": "x@example.org", "password": PASSWORD, "password_hash": _SHA512.hash("x")},
         "Give either a password or a password hash"),
        ({"email": "x@example.org", "password": ""}, "A password is required"),
        ({"email": "x@example.org", "password": "p" * 73}, "at most 72 bytes"),
        ({"email": "x@example.org", "password": "pass\x00word"}, "NUL"),
        ({"email": "x@example.org", "password": None, "password_hash": "{BLF-CRYPT}nonsense"},
         "not a valid BLF-CRYPT hash"),
        ({"email": "x@example.org", "password": None, "password_hash": "{FOO}x"},
         "Unsupported password hash"),
        ({"email": "x@example.org", "name": "a\nb"}, "control characters"),
        ({"email": "x@example.org", "name": "n" * 256}, "at most 255"),
        ({"email": "x@example.org", "quota": "abc"}, "is not a size"),
        ({"email": "x@example.org", "quota": -1}, "cannot be negative"),
    ],
)
def test_it_refuses_bad_mailbox_input(domain, kwargs, fragment):
    call = {"password": PASSWORD, **kwargs}
    if call["password"] is None:
        del call["password"]
    with refused(fragment) as exc:
        services.create_mailbox(actor=ACTOR, **call)
    for secret in (kwargs.get("password"), kwargs.get("password_hash")):
        if secret:
            assert secret not in " ".join(exc.value.messages)


def test_it_refuses_a_mailbox_with_a_newline_in_the_address(domain):
    try:
        make_mailbox("bob\n@example.org")
    except ValidationError:
        return
    assert "\n" not in Mailbox.objects.get().email


# ---------------------------------------------------------------- import_mailboxes


def test_it_imports_mailboxes_with_hashes():
    domain = make_domain("example.org", default_quota="1G")
    sha = _SHA512.hash(PASSWORD)
    blf = bcrypt.using(rounds=4, ident="2y").hash(PASSWORD)
    arg = "{ARGON2ID}" + _ARGON2ID.hash(PASSWORD)
    created = services.import_mailboxes(actor=ACTOR, domain=domain, rows=[
        MailboxImport(email="Ann@Example.org", password_hash=sha, name="Ann"),
        MailboxImport(email="ben@example.org", password_hash=blf, quota="2G"),
        MailboxImport(email="cy@example.org", password_hash=arg, quota=0),
    ])
    assert sorted(m.email for m in created) == ["ann@example.org", "ben@example.org",
                                                "cy@example.org"]
    rows = {m.email: m for m in Mailbox.objects.all()}
    assert set(rows) == {"ann@example.org", "ben@example.org", "cy@example.org"}
    assert rows["ann@example.org"].password == "{SHA512-CRYPT}" + sha
    assert rows["ann@example.org"].name == "Ann"
    assert rows["ann@example.org"].quota == GIB
    assert rows["ben@example.org"].password == "{BLF-CRYPT}" + blf
    assert rows["ben@example.org"].quota == 2 * GIB
    assert rows["cy@example.org"].password == arg
    assert rows["cy@example.org"].quota == 0
    assert all(m.password_changed is not None and m.domain_id == domain.pk
               for m in rows.values())
    for row in rows.values():
        assert passwords.verify_password(PASSWORD, row.password)
    entries = audit_rows("mailbox.import")
    assert sorted(e.object_id for e in entries) == sorted(m.pk for m in rows.values())
    assert all(e.domain == "example.org" and "password" not in e.after for e in entries)


def test_an_empty_import_writes_nothing(domain):
    before = db_state()
    assert services.import_mailboxes(actor=ACTOR, domain=domain, rows=[]) == []
    assert db_state() == before


def test_one_bad_row_refuses_the_whole_import(domain):
    good = _SHA512.hash(PASSWORD)
    rows = [
        MailboxImport(email="a@example.org", password_hash=good),
        MailboxImport(email="b@example.org", password_hash="{BLF-CRYPT}nonsense"),
        MailboxImport(email="c@example.org", password_hash=good),
    ]
    with refused() as exc:
        services.import_mailboxes(actor=ACTOR, domain=domain, rows=rows)
    assert exc.value.messages == ["row 2: The hash is not a valid BLF-CRYPT hash."]
    assert "nonsense" not in " ".join(exc.value.messages)


def test_an_import_lists_every_bad_row(domain):
    good = _SHA512.hash(PASSWORD)
    rows = [
        MailboxImport(email="a@example.org", password_hash=good),
        MailboxImport(email="not an address", password_hash=good),
        MailboxImport(email="c@other.org", password_hash=good),
        MailboxImport(email="d@example.org", password_hash="{FOO}x"),
        MailboxImport(email="e@example.org", password_hash=good, quota="lots"),
        MailboxImport(email="f@example.org", password_hash=good, name="a\nb"),
        MailboxImport(email="g@example.org", password_hash=good),
    ]
    with refused() as exc:
        services.import_mailboxes(actor=ACTOR, domain=domain, rows=rows)
    messages = exc.value.messages
    assert [m.split(":", 1)[0] for m in messages] == ["row 2", "row 3", "row 4", "row 5",
                                                      "row 6"]
    assert "is not a mail address" in messages[0]
    assert messages[1] == "row 3: c@other.org is not in example.org."
    assert "Unsupported password hash" in messages[2]
    assert "is not a size" in messages[3]
    assert "control characters" in messages[4]


def test_an_import_refuses_duplicate_rows(domain):
    good = _SHA512.hash(PASSWORD)
    rows = [
        MailboxImport(email="bob@example.org", password_hash=good),
        MailboxImport(email="BOB@Example.org", password_hash=good),
    ]
    with refused() as exc:
        services.import_mailboxes(actor=ACTOR, domain=domain, rows=rows)
    assert exc.value.messages == ["row 2: bob@example.org appears twice."]


def test_an_import_refuses_existing_addresses(domain, mailbox):
    make_alias("info@example.org", "bob@example.org")
    good = _SHA512.hash(PASSWORD)
    rows = [
        MailboxImport(email="new@example.org", password_hash=good),
        MailboxImport(email="info@example.org", password_hash=good),
        MailboxImport(email="bob@example.org", password_hash=good),
    ]
    with refused() as exc:
        services.import_mailboxes(actor=ACTOR, domain=domain, rows=rows)
    assert exc.value.messages == ["bob@example.org already exists.",
                                  "info@example.org already exists."]


def test_an_import_respects_max_mailboxes():
    domain = make_domain("example.org", max_mailboxes=2)
    make_mailbox("a@example.org")
    good = _SHA512.hash(PASSWORD)
    rows = [MailboxImport(email=f"n{i}@example.org", password_hash=good) for i in range(2)]
    with refused("example.org allows 2 mailboxes and has 1; 2 more do not fit."):
        services.import_mailboxes(actor=ACTOR, domain=domain, rows=rows)
    services.import_mailboxes(actor=ACTOR, domain=domain, rows=rows[:1])
    assert Mailbox.objects.count() == 2


def test_an_import_respects_max_quota():
    domain = make_domain("example.org", max_quota="2G", default_quota="1G")
    good = _SHA512.hash(PASSWORD)
    rows = [MailboxImport(email=f"n{i}@example.org", password_hash=good) for i in range(3)]
    with refused("example.org has 2G quota left of 2G; 3G does not fit."):
        services.import_mailboxes(actor=ACTOR, domain=domain, rows=rows)
    unlimited = [MailboxImport(email="u@example.org", password_hash=good, quota=0)]
    with refused("every mailbox needs a quota"):
        services.import_mailboxes(actor=ACTOR, domain=domain, rows=unlimited)
    services.import_mailboxes(actor=ACTOR, domain=domain, rows=rows[:2])
    assert Mailbox.objects.count() == 2


# ---------------------------------------------------------------- set_mailbox_password


def test_it_sets_a_mailbox_password_without_auditing_the_hash(mailbox):
    old_hash = fresh(mailbox).password
    old_changed = fresh(mailbox).password_changed
    services.set_mailbox_password(actor=ACTOR, mailbox=mailbox, password=OTHER_PASSWORD)
    row = fresh(mailbox)
    assert row.password != old_hash
    assert row.password.startswith("{BLF-CRYPT}$2y$04$")
    assert passwords.verify_password(OTHER_PASSWORD, row.password)
    assert not passwords.verify_password(PASSWORD, row.password)
    assert row.password_changed >= old_changed
    [entry] = audit_rows("mailbox.password")
    assert entry.before is None
    assert entry.after == {"password_changed": True}
    assert entry.object_id == mailbox.pk
    assert entry.domain == "example.org"
    everything = json.dumps([[e.before, e.after, e.object_repr]
                             for e in AuditEntry.objects.all()])
    for secret in (row.password, old_hash, OTHER_PASSWORD, PASSWORD,
                   row.password.split("}", 1)[1], old_hash.split("}", 1)[1]):
        assert secret not in everything


def test_it_sets_a_mailbox_password_from_a_hash(mailbox):
    crypt = _SHA512.hash(OTHER_PASSWORD)
    services.set_mailbox_password(actor=ACTOR, mailbox=mailbox, password_hash=crypt)
    assert fresh(mailbox).password == "{SHA512-CRYPT}" + crypt
    everything = json.dumps([[e.before, e.after] for e in AuditEntry.objects.all()])
    assert crypt not in everything


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "Give either a password or a password hash"),
        ({"password": "x", "password_hash": "{FOO}y"}, "Give either"),
        ({"password": "q" * 73}, "at most 72 bytes"),
        ({"password": "a\x00b"}, "NUL"),
        ({"password": ""}, "A password is required"),
        ({"password_hash": "{ARGON2ID}$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA"},
         "not a valid ARGON2ID hash"),
        ({"password_hash": ""}, "Unsupported password hash"),
    ],
)
def test_it_refuses_bad_mailbox_passwords(mailbox, kwargs, fragment):
    with refused(fragment) as exc:
        services.set_mailbox_password(actor=ACTOR, mailbox=mailbox, **kwargs)
    for secret in kwargs.values():
        if len(secret) > 3:
            assert secret not in " ".join(exc.value.messages)


# ---------------------------------------------------------------- update_mailbox


def test_it_updates_a_mailbox_name_and_audits_it(mailbox):
    services.update_mailbox(actor=ACTOR, mailbox=mailbox, name=" Robert ")
    assert fresh(mailbox).name == "Robert"
    [entry] = audit_rows("mailbox.update")
    assert (entry.before, entry.after) == ({"name": ""}, {"name": "Robert"})


def test_a_mailbox_update_without_changes_writes_no_audit_row(mailbox):
    services.update_mailbox(actor=ACTOR, mailbox=mailbox, name="", quota=0)
    assert audit_rows("mailbox.update") == []


def test_mailbox_quota_updates_respect_max_quota():
    make_domain("example.org", max_quota="3G", default_quota="1G")
    a = make_mailbox("a@example.org")
    make_mailbox("b@example.org")
    services.update_mailbox(actor=ACTOR, mailbox=a, quota="2G")
    assert fresh(a).quota == 2 * GIB
    [entry] = audit_rows("mailbox.update")
    assert (entry.before, entry.after) == ({"quota": GIB}, {"quota": 2 * GIB})
    with refused("example.org has 2G quota left of 3G; 2560M does not fit."):
        services.update_mailbox(actor=ACTOR, mailbox=a, quota="2.5G")
    with refused("every mailbox needs a quota"):
        services.update_mailbox(actor=ACTOR, mailbox=a, quota=0)
    services.update_mailbox(actor=ACTOR, mailbox=a, quota="512M")
    assert fresh(a).quota == 512 * MIB


def test_mailbox_quota_is_free_without_max_quota(mailbox):
    services.update_mailbox(actor=ACTOR, mailbox=mailbox, quota="100T")
    assert fresh(mailbox).quota == 100 * 1024**4
    services.update_mailbox(actor=ACTOR, mailbox=mailbox, quota=0)
    assert fresh(mailbox).quota == 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "x\r\ny"}, "control characters"),
        ({"name": "n" * 256}, "at most 255"),
        ({"name": 5}, "must be text"),
        ({"quota": "big"}, "is not a size"),
        ({"quota": -1}, "cannot be negative"),
    ],
)
def test_it_refuses_bad_mailbox_updates(mailbox, kwargs, fragment):
    with refused(fragment):
        services.update_mailbox(actor=ACTOR, mailbox=mailbox, **kwargs)


# ---------------------------------------------------------------- set_mailbox_active


def test_it_disables_and_enables_a_mailbox(mailbox):
    services.set_mailbox_active(actor=ACTOR, mailbox=mailbox, active=False)
    assert fresh(mailbox).active is False
    [entry] = audit_rows("mailbox.disable")
    assert (entry.before, entry.after) == ({"active": True}, {"active": False})
    assert entry.domain == "example.org"
    services.set_mailbox_active(actor=ACTOR, mailbox=mailbox, active=False)
    assert len(audit_rows("mailbox.disable")) == 1
    services.set_mailbox_active(actor=ACTOR, mailbox=mailbox, active=True)
    assert fresh(mailbox).active is True
    [entry] = audit_rows("mailbox.enable")
    assert (entry.before, entry.after) == ({"active": False}, {"active": True})


def test_enabling_an_active_mailbox_writes_nothing(mailbox):
    before = db_state()
    services.set_mailbox_active(actor=ACTOR, mailbox=mailbox, active=True)
    assert db_state() == before


# ---------------------------------------------------------------- delete_mailbox


def test_it_deletes_a_mailbox_and_cleans_the_aliases(domain, mailbox, settings):
    settings.MAILADMIN_VMAIL_DIR = "/data/vmail"
    make_domain("other.org")
    make_mailbox("alice@example.org")
    make_mailbox("xbob@example.org")
    team = make_alias("team@example.org", ["bob@example.org", "alice@example.org"])
    solo = make_alias("solo@example.org", "bob@example.org")
    remote = make_alias("fwd@other.org", ["bob@example.org", "bob@example.org.evil.net"])
    near = make_alias("near@example.org", ["xbob@example.org", "bob@example.org.evil.net"])

    path = services.delete_mailbox(actor=ACTOR, mailbox=mailbox)

    assert path == "/data/vmail/example.org/bob"
    assert not Mailbox.objects.filter(email="bob@example.org").exists()
    assert fresh(team).destinations == "alice@example.org"
    assert not Alias.objects.filter(pk=solo.pk).exists()
    assert fresh(remote).destinations == "bob@example.org.evil.net"
    assert fresh(near).destinations == "xbob@example.org,bob@example.org.evil.net"

    [deleted] = audit_rows("mailbox.delete")
    assert deleted.object_id == mailbox.pk
    assert deleted.after == {"maildir_kept": "/data/vmail/example.org/bob"}
    assert deleted.before["email"] == "bob@example.org"
    updates = {e.object_repr: e for e in audit_rows("alias.update")}
    assert set(updates) == {"team@example.org", "fwd@other.org"}
    assert updates["team@example.org"].before == {
        "destinations": "bob@example.org,alice@example.org"}
    assert updates["team@example.org"].after == {"destinations": "alice@example.org"}
    assert updates["fwd@other.org"].domain == "other.org"
    [alias_deleted] = audit_rows("alias.delete")
    assert alias_deleted.object_id == solo.pk
    assert alias_deleted.after == {"reason": "last destination bob@example.org deleted"}


def test_deleting_a_deleted_mailbox_changes_nothing(mailbox):
    stale = Mailbox.objects.get(pk=mailbox.pk)
    services.delete_mailbox(actor=ACTOR, mailbox=mailbox)
    before = db_state()
    with pytest.raises((ValidationError, Mailbox.DoesNotExist)):
        services.delete_mailbox(actor=ACTOR, mailbox=stale)
    assert db_state() == before


@pytest.mark.parametrize("email", ["/etc@example.org", "/@example.org", "x/y@example.org",
                                   "a/./b@example.org"])
def test_a_mailbox_maildir_stays_inside_its_domain_dir(domain, email):
    try:
        created = make_mailbox(email)
    except ValidationError:
        return
    path = services.delete_mailbox(actor=ACTOR, mailbox=created)
    assert path == f"/var/vmail/example.org/{created.local_part}"
    assert path.rsplit("/", 1)[0] == "/var/vmail/example.org"


def test_maildir_path_uses_the_vmail_dir(settings):
    assert services.maildir_path("bob@example.org") == "/var/vmail/example.org/bob"
    change_host(vmail_dir="/srv/vmail/")
    assert services.maildir_path("a.b+c@xn--exmple-cua.org") == (
        "/srv/vmail/xn--exmple-cua.org/a.b+c")


# ---------------------------------------------------------------- verify_mailbox_login


def test_it_verifies_a_login(mailbox):
    before = db_state()
    found = services.verify_mailbox_login(email="BOB@example.org ", password=PASSWORD)
    assert found is not None and found.pk == mailbox.pk
    assert services.verify_mailbox_login(email="bob@example.org", password="wrong") is None
    assert services.verify_mailbox_login(email="bob@example.org", password="") is None
    assert services.verify_mailbox_login(email="nobody@example.org", password=PASSWORD) is None
    assert services.verify_mailbox_login(email="not an address", password=PASSWORD) is None
    assert services.verify_mailbox_login(email="", password=PASSWORD) is None
    assert db_state() == before


def test_a_disabled_mailbox_cannot_sign_in(mailbox):
    services.set_mailbox_active(actor=ACTOR, mailbox=mailbox, active=False)
    assert services.verify_mailbox_login(email="bob@example.org", password=PASSWORD) is None


def test_a_mailbox_in_a_disabled_domain_cannot_sign_in(domain, mailbox):
    services.set_domain_active(actor=ACTOR, domain=domain, active=False)
    assert services.verify_mailbox_login(email="bob@example.org", password=PASSWORD) is None
    services.set_domain_active(actor=ACTOR, domain=domain, active=True)
    assert services.verify_mailbox_login(email="bob@example.org", password=PASSWORD) is not None


def test_a_current_hash_is_not_rewritten_on_login(mailbox):
    stored = fresh(mailbox).password
    services.verify_mailbox_login(email="bob@example.org", password=PASSWORD)
    assert fresh(mailbox).password == stored
    assert audit_rows("mailbox.rehash") == []


def test_a_sha512_hash_is_rehashed_to_blf_crypt_on_login(domain):
    crypt = _SHA512.hash(PASSWORD)
    created = make_mailbox("bob@example.org", password_hash=crypt)
    assert services.verify_mailbox_login(email="bob@example.org", password="wrong") is None
    assert fresh(created).password == "{SHA512-CRYPT}" + crypt
    assert audit_rows("mailbox.rehash") == []

    found = services.verify_mailbox_login(email="bob@example.org", password=PASSWORD)
    row = fresh(created)
    assert found is not None and found.password == row.password
    assert row.password.startswith("{BLF-CRYPT}$2y$04$")
    assert passwords.verify_password(PASSWORD, row.password)
    [entry] = audit_rows("mailbox.rehash")
    assert entry.actor == "bob@example.org"
    assert entry.object_id == created.pk
    assert entry.domain == "example.org"
    assert entry.before == {"scheme": "SHA512-CRYPT"}
    assert entry.after == {"scheme": "BLF-CRYPT"}

    services.verify_mailbox_login(email="bob@example.org", password=PASSWORD)
    assert len(audit_rows("mailbox.rehash")) == 1
    assert fresh(created).password == row.password


def test_a_bcrypt_hash_with_other_rounds_is_rehashed(domain):
    crypt = bcrypt.using(rounds=5, ident="2y").hash(PASSWORD)
    created = make_mailbox("bob@example.org", password_hash=crypt)
    assert services.verify_mailbox_login(email="bob@example.org", password=PASSWORD)
    assert fresh(created).password.startswith("{BLF-CRYPT}$2y$04$")
    [entry] = audit_rows("mailbox.rehash")
    assert (entry.before, entry.after) == ({"scheme": "BLF-CRYPT"}, {"scheme": "BLF-CRYPT"})


def test_a_long_imported_password_still_signs_in(domain):
    long_password = "p" * 73
    make_mailbox("bob@example.org", password_hash=_SHA512.hash(long_password))
    assert services.verify_mailbox_login(email="bob@example.org", password=long_password)


# ---------------------------------------------------------------- create_alias


def test_it_creates_a_catchall(domain, mailbox):
    created = make_alias("@Example.ORG", "bob@example.org")
    row = Alias.objects.get()
    assert row.pk == created.pk
    assert row.source == "@example.org"
    assert row.is_catchall
    assert row.destinations == "bob@example.org"
    assert row.domain_id == domain.pk
    [entry] = audit_rows("alias.create")
    assert entry.after["source"] == "@example.org"
    assert entry.domain == "example.org"


def test_it_creates_an_alias_with_several_destinations(domain, mailbox):
    make_mailbox("alice@example.org")
    make_alias("Team@Example.org",
               " Bob@Example.ORG, someone@Other.NET,,bob@example.org , alice@example.org")
    row = Alias.objects.get()
    assert row.source == "team@example.org"
    assert row.destinations == "bob@example.org,someone@other.net,alice@example.org"
    assert row.destination_list == ["bob@example.org", "someone@other.net",
                                    "alice@example.org"]
    make_alias("list@example.org", ["team@example.org", "x@bücher.de"], active=False)
    row = Alias.objects.get(source="list@example.org")
    assert row.destinations == "team@example.org,x@xn--bcher-kva.de"
    assert row.active is False


def test_it_refuses_an_unknown_local_destination(domain, mailbox):
    with refused("nobody@example.org is in a domain of this server but neither a mailbox "
                 "nor an alias."):
        make_alias("info@example.org", ["bob@example.org", "nobody@example.org"])
    make_domain("other.org")
    with refused("a@other.org, b@example.org are in a domain of this server"):
        make_alias("info@example.org", "b@example.org,a@other.org")


def test_it_refuses_an_alias_to_itself(domain, mailbox):
    with refused("info@example.org cannot deliver to itself."):
        make_alias("info@example.org", ["bob@example.org", "INFO@example.org"])


def test_it_refuses_an_alias_over_a_mailbox(domain, mailbox):
    with refused("bob@example.org is already a mailbox."):
        make_alias("Bob@example.org", "someone@other.net")


def test_it_refuses_a_duplicate_alias(domain, mailbox):
    make_alias("info@example.org", "bob@example.org")
    with refused("info@example.org is already an alias."):
        make_alias("info@example.org", "someone@other.net")
    make_alias("@example.org", "bob@example.org")
    with refused("@example.org is already the catch-all"):
        make_alias("@EXAMPLE.org", "someone@other.net")


def test_it_refuses_an_alias_beyond_max_aliases(mailbox):
    services.update_domain(actor=ACTOR, domain=mailbox.domain, max_aliases=1)
    make_alias("a@example.org", "bob@example.org")
    with refused("example.org has reached its limit of 1 aliases."):
        make_alias("b@example.org", "bob@example.org")


def test_it_refuses_an_alias_in_an_unknown_or_alias_domain(domain, mailbox):
    with refused("unknown.org is not a domain of this server."):
        make_alias("a@unknown.org", "bob@example.org")
    services.create_alias_domain(actor=ACTOR, name="example.net", target=domain)
    with refused("example.net is an alias domain of example.org"):
        make_alias("a@example.net", "bob@example.org")


@pytest.mark.parametrize(
    ("source", "destinations", "fragment"),
    [
        ("a@example.org", "", "at least one destination"),
        ("a@example.org", " , ,", "at least one destination"),
        ("a@example.org", [], "at least one destination"),
        ("a@example.org", "@other.net", "has no local part"),
        ("a@example.org", "not an address", "is not a mail address"),
        ("a@example.org", "x@localhost", "needs at least one dot"),
        ("a@example.org", [f"u{i}@other.net" for i in range(101)], "at most 100 destinations"),
        ("a..b@example.org", "bob@example.org", "is not a valid address"),
        ("example.org", "bob@example.org", "is not a mail address"),
    ],
)
def test_it_refuses_bad_alias_input(mailbox, source, destinations, fragment):
    with refused(fragment):
        make_alias(source, destinations)


def test_an_alias_may_have_100_destinations(mailbox):
    make_alias("a@example.org", [f"u{i}@other.net" for i in range(100)])
    assert len(Alias.objects.get().destination_list) == 100


# ---------------------------------------------------------------- update_alias


def test_it_updates_an_alias(domain, mailbox):
    make_mailbox("alice@example.org")
    alias = make_alias("team@example.org", "bob@example.org")
    services.update_alias(actor=ACTOR, alias=alias, destinations=["alice@example.org",
                                                                  "Ext@Other.net"],
                                                                  checked_domains=None)
    assert fresh(alias).destinations == "alice@example.org,ext@other.net"
    [entry] = audit_rows("alias.update")
    assert entry.before == {"destinations": "bob@example.org"}
    assert entry.after == {"destinations": "alice@example.org,ext@other.net"}

    services.update_alias(actor=ACTOR, alias=alias, active=False, checked_domains=None)
    assert fresh(alias).active is False
    assert audit_rows("alias.update")[-1].after == {"active": False}

    rows_before = counts()
    values_before = Alias.objects.values("source", "destinations", "active").get()
    services.update_alias(actor=ACTOR, alias=alias, destinations="alice@example.org,"
                          "ext@other.net", active=False, checked_domains=None)
    assert counts() == rows_before
    assert Alias.objects.values("source", "destinations", "active").get() == values_before


def test_it_updates_a_catchall(domain, mailbox):
    catchall = make_alias("@example.org", "bob@example.org")
    services.update_alias(actor=ACTOR, alias=catchall, destinations="postmaster@other.net",
                          checked_domains=None)
    assert fresh(catchall).destinations == "postmaster@other.net"


@pytest.mark.parametrize(
    ("destinations", "fragment"),
    [
        ("nobody@example.org", "neither a mailbox nor an alias"),
        ("team@example.org", "team@example.org cannot deliver to itself."),
        ("", "at least one destination"),
        ("bad address", "is not a mail address"),
    ],
)
def test_it_refuses_bad_alias_updates(mailbox, destinations, fragment):
    alias = make_alias("team@example.org", "bob@example.org")
    with refused(fragment):
        services.update_alias(actor=ACTOR, alias=alias, destinations=destinations,
                              checked_domains=None)


# ---------------------------------------------------------------- delete_alias


def test_it_deletes_an_alias(domain, mailbox):
    alias = make_alias("team@example.org", "bob@example.org")
    keep = make_alias("keep@example.org", "bob@example.org")
    services.delete_alias(actor=ACTOR, alias=alias)
    assert list(Alias.objects.values_list("source", flat=True)) == [keep.source]
    [entry] = audit_rows("alias.delete")
    assert entry.object_id == alias.pk
    assert entry.before["source"] == "team@example.org"
    assert entry.before["destinations"] == "bob@example.org"
    assert entry.after is None
    assert fresh(mailbox).email == "bob@example.org"


def test_deleting_a_deleted_alias_changes_nothing(mailbox):
    alias = make_alias("team@example.org", "bob@example.org")
    stale = Alias.objects.get(pk=alias.pk)
    services.delete_alias(actor=ACTOR, alias=alias)
    before = db_state()
    with pytest.raises((ValidationError, Alias.DoesNotExist)):
        services.delete_alias(actor=ACTOR, alias=stale)
    assert db_state() == before


# ---------------------------------------------------------------- alias domains


def test_it_creates_an_alias_domain(domain):
    created = services.create_alias_domain(actor=ACTOR, name="Exämple.NET", target=domain)
    row = AliasDomain.objects.get()
    assert row.pk == created.pk
    assert row.name == "xn--exmple-cua.net"
    assert row.target_id == domain.pk
    assert row.active is True
    [entry] = audit_rows("aliasdomain.create")
    assert entry.domain == "example.org"
    assert entry.after["name"] == "xn--exmple-cua.net"
    assert entry.after["target_id"] == domain.pk

    services.create_alias_domain(actor=ACTOR, name="example.com", target="EXAMPLE.org.",
                                 active=False)
    row = AliasDomain.objects.get(name="example.com")
    assert (row.target_id, row.active) == (domain.pk, False)


def test_it_refuses_an_alias_domain_of_itself(domain):
    with refused("example.org cannot be an alias of itself."):
        services.create_alias_domain(actor=ACTOR, name="Example.org", target=domain)
    with refused("example.net cannot be an alias of itself."):
        services.create_alias_domain(actor=ACTOR, name="example.net", target="EXAMPLE.net")


def test_it_refuses_an_alias_of_an_alias_domain(domain):
    services.create_alias_domain(actor=ACTOR, name="example.net", target=domain)
    with refused("example.net is itself an alias domain (of example.org); point "
                 "example.com at example.org instead."):
        services.create_alias_domain(actor=ACTOR, name="example.com", target="example.net")


def test_it_refuses_an_alias_domain_shadowing_a_domain(domain):
    make_domain("other.org")
    with refused("other.org is a domain with its own mailboxes"):
        services.create_alias_domain(actor=ACTOR, name="other.org", target=domain)


def test_it_refuses_an_alias_domain_of_an_unknown_target(domain):
    with refused("unknown.org is not a domain of this server."):
        services.create_alias_domain(actor=ACTOR, name="example.net", target="unknown.org")


def test_it_refuses_a_duplicate_alias_domain(domain):
    make_domain("other.org")
    services.create_alias_domain(actor=ACTOR, name="example.net", target=domain)
    with refused("The alias domain example.net already exists."):
        services.create_alias_domain(actor=ACTOR, name="example.net", target="other.org")


@pytest.mark.parametrize(("name", "target"), [("localhost", "example.org"),
                                              ("example.net", "bad name"),
                                              ("", "example.org")])
def test_it_refuses_bad_alias_domain_names(domain, name, target):
    with refused():
        services.create_alias_domain(actor=ACTOR, name=name, target=target)


def test_it_disables_and_enables_an_alias_domain(domain):
    alias_domain = services.create_alias_domain(actor=ACTOR, name="example.net", target=domain)
    services.set_alias_domain_active(actor=ACTOR, alias_domain=alias_domain, active=False)
    assert fresh(alias_domain).active is False
    [entry] = audit_rows("aliasdomain.disable")
    assert (entry.before, entry.after) == ({"active": True}, {"active": False})
    assert entry.domain == "example.org"
    services.set_alias_domain_active(actor=ACTOR, alias_domain=alias_domain, active=False)
    assert len(audit_rows("aliasdomain.disable")) == 1
    services.set_alias_domain_active(actor=ACTOR, alias_domain=alias_domain, active=True)
    assert fresh(alias_domain).active is True
    assert len(audit_rows("aliasdomain.enable")) == 1


def test_it_deletes_an_alias_domain(domain):
    alias_domain = services.create_alias_domain(actor=ACTOR, name="example.net", target=domain)
    keep = services.create_alias_domain(actor=ACTOR, name="example.com", target=domain)
    services.delete_alias_domain(actor=ACTOR, alias_domain=alias_domain)
    assert list(AliasDomain.objects.values_list("pk", flat=True)) == [keep.pk]
    assert fresh(domain).name == "example.org"
    [entry] = audit_rows("aliasdomain.delete")
    assert entry.object_id == alias_domain.pk
    assert entry.before["name"] == "example.net"
    assert entry.domain == "example.org"
    # The name is free again, even as a real domain.
    make_domain("example.net")


def test_deleting_a_deleted_alias_domain_changes_nothing(domain):
    alias_domain = services.create_alias_domain(actor=ACTOR, name="example.net", target=domain)
    stale = AliasDomain.objects.get(pk=alias_domain.pk)
    services.delete_alias_domain(actor=ACTOR, alias_domain=alias_domain)
    before = db_state()
    with pytest.raises((ValidationError, AliasDomain.DoesNotExist)):
        services.delete_alias_domain(actor=ACTOR, alias_domain=stale)
    assert db_state() == before


# ---------------------------------------------------------------- usage


def test_domain_usage_counts_mailboxes_aliases_and_quota(domain):
    assert services.domain_usage(domain) == services.DomainUsage(0, 0, 0, 0)
    make_mailbox("a@example.org", quota="1G")
    make_mailbox("b@example.org", quota="512M")
    make_mailbox("c@example.org")
    make_alias("x@example.org", "a@example.org")
    make_domain("other.org")
    make_mailbox("z@other.org", quota="5G")
    assert services.domain_usage(domain) == services.DomainUsage(
        mailboxes=3, aliases=1, quota_total=GIB + 512 * MIB, unlimited_mailboxes=1)


# ---------------------------------------------------------------- audit secrecy


def test_no_audit_row_ever_holds_a_password(settings):
    """Every write above in one run; then no before/after has a 'password' key or a hash."""
    domain = make_domain("example.org", max_quota="10G", default_quota="1G")
    services.update_domain(actor=ACTOR, domain=domain, description="d", max_mailboxes=50)
    bob = make_mailbox("bob@example.org")
    alice = make_mailbox("alice@example.org", password_hash=_SHA512.hash(OTHER_PASSWORD))
    services.import_mailboxes(actor=ACTOR, domain=domain, rows=[
        MailboxImport(email="imp@example.org", password_hash=_SHA512.hash(PASSWORD)),
    ])
    services.set_mailbox_password(actor=ACTOR, mailbox=bob, password=OTHER_PASSWORD)
    services.set_mailbox_password(actor=ACTOR, mailbox=bob,
                                  password_hash=_SHA512.hash(PASSWORD))
    services.update_mailbox(actor=ACTOR, mailbox=bob, name="Bob", quota="2G")
    services.set_mailbox_active(actor=ACTOR, mailbox=bob, active=False)
    services.set_mailbox_active(actor=ACTOR, mailbox=bob, active=True)
    assert services.verify_mailbox_login(email="alice@example.org", password=OTHER_PASSWORD)
    team = make_alias("team@example.org", ["bob@example.org", "alice@example.org"])
    services.update_alias(actor=ACTOR, alias=team, active=False, checked_domains=None)
    make_alias("@example.org", "alice@example.org")
    services.delete_mailbox(actor=ACTOR, mailbox=alice)
    services.delete_alias(actor=ACTOR, alias=team)
    alias_domain = services.create_alias_domain(actor=ACTOR, name="example.net", target=domain)
    services.set_alias_domain_active(actor=ACTOR, alias_domain=alias_domain, active=False)
    services.delete_alias_domain(actor=ACTOR, alias_domain=alias_domain)
    services.create_alias_domain(actor=ACTOR, name="example.com", target=domain)
    services.set_domain_active(actor=ACTOR, domain=domain, active=False)
    services.delete_domain(actor=ACTOR, domain=domain, force=True)

    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert actions >= {
        "domain.create", "domain.update", "domain.disable", "domain.delete",
        "mailbox.create", "mailbox.import", "mailbox.password", "mailbox.update",
        "mailbox.disable", "mailbox.enable", "mailbox.rehash", "mailbox.delete",
        "alias.create", "alias.update", "alias.delete",
        "aliasdomain.create", "aliasdomain.disable", "aliasdomain.delete",
    }
    for row in AuditEntry.objects.all():
        for part in (row.before, row.after):
            assert "password" not in set(_keys(part)), row.action
    assert_audit_is_clean()


@pytest.mark.django_db
def test_deleting_an_alias_takes_it_out_of_aliases_that_forwarded_to_it():
    services.create_domain(actor="t", name="chain.example")
    services.create_mailbox(actor="t", email="bob@chain.example", password="correct horse 1")
    services.create_alias(actor="t", source="team@chain.example", destinations="bob@chain.example",
                          checked_domains=None)
    services.create_alias(actor="t", source="all@chain.example",
                          destinations="team@chain.example,ext@else.net", checked_domains=None)
    services.create_alias(actor="t", source="only@chain.example",
                          destinations="team@chain.example", checked_domains=None)
    services.delete_alias(actor="t", alias=Alias.objects.get(source="team@chain.example"))
    assert Alias.objects.get(source="all@chain.example").destinations == "ext@else.net"
    assert not Alias.objects.filter(source="only@chain.example").exists()


# ---------------------------------------------------------------- what the daemons cannot serve


@pytest.mark.parametrize("email", ["o!brien@example.org", "o+brien@example.org"])
def test_a_mailbox_name_the_daemons_cannot_serve_is_refused(domain, email):
    before = db_state()
    with refused(email, "cannot be a mailbox"):
        services.create_mailbox(actor=ACTOR, email=email, password=PASSWORD)
    with refused(email, "cannot be a mailbox"):
        services.import_mailboxes(actor=ACTOR, domain=domain, rows=[
            MailboxImport(email=email, password_hash=bcrypt.using(rounds=4).hash(PASSWORD))])
    assert db_state() == before


def test_an_alias_source_with_a_bang_is_refused_but_a_plus_is_fine(mailbox):
    with refused("o!brien@example.org", "source routing"):
        services.create_alias(actor=ACTOR, source="o!brien@example.org",
                              destinations=mailbox.email, checked_domains=None)
    # Postfix looks the full address up before the one without +extension.
    services.create_alias(actor=ACTOR, source="o+brien@example.org",
                          destinations=f"{mailbox.email},carol+lists@else.net,a!b@else.net",
                          checked_domains=None)
    assert Alias.objects.filter(source="o+brien@example.org").exists()


def test_a_mailbox_may_hold_the_other_atom_characters(domain):
    for char in "#$&'*-=?^_`{|}~":
        services.create_mailbox(actor=ACTOR, email=f"o{char}brien@example.org",
                                password=PASSWORD)
    assert Mailbox.objects.count() == 15


# ---------------------------------------------------------------- the password policy


@pytest.mark.parametrize(("password", "message"), [
    ("a", "Use at least 12 characters."),
    ("xx-bob-bob-2024-xx", "Do not put your address's name in your password."),
])
def test_every_plaintext_password_meets_the_policy(domain, mailbox, password, message):
    with refused(message):
        make_mailbox("carol@example.org", password=password.replace("bob", "carol"))
    with refused(message):
        services.set_mailbox_password(actor=ACTOR, mailbox=mailbox, password=password)
    with refused(message):
        services.update_mailbox(actor=ACTOR, mailbox=mailbox, name="Bob", password=password)
    assert services.verify_mailbox_login(email="bob@example.org", password=PASSWORD)


def test_an_imported_hash_is_not_held_to_the_plaintext_policy(domain):
    """Moving in keeps people's existing passwords; only new plaintext is checked."""
    make_mailbox("bob@example.org", password_hash=_SHA512.hash("a"))
    assert services.verify_mailbox_login(email="bob@example.org", password="a")


# Issue 8 review, item 5: cleaning aliases after a delete costs the same for 1 or 20 of them.


def _queries_to_delete_a_mailbox_in_aliases(count: int) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_domain(f"home{count}.org")
    others = [make_domain(f"other{count}-{n}.org") for n in range(2)]
    victim = make_mailbox(f"bob@home{count}.org")
    make_mailbox(f"keep@home{count}.org")
    for n in range(count):
        domain = others[n % 2].name
        make_alias(f"fw{n}@{domain}", [victim.email, f"keep@home{count}.org"])
        make_alias(f"solo{n}@{domain}", victim.email)
    with CaptureQueriesContext(connection) as queries:
        services.delete_mailbox(actor=ACTOR, mailbox=victim)
    assert not Alias.objects.filter(destinations__contains=victim.email).exists()
    assert AuditEntry.objects.filter(action="alias.delete",
                                     object_repr__startswith="solo").count() >= count
    return len(queries)


def test_cleaning_aliases_after_a_delete_takes_a_fixed_number_of_queries(db):
    change_host()  # the mail host row exists before either count, as on a running panel
    assert _queries_to_delete_a_mailbox_in_aliases(1) == _queries_to_delete_a_mailbox_in_aliases(
        20)
