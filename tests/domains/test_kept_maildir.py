"""A deleted mailbox's kept Maildir is not silently handed to a new person (issue 8, item 6).

Re-creating the address is refused until a superadmin either chooses to
reuse the kept mail (recorded in the audit row) or records that the
directory was removed on the mail host.
"""

from __future__ import annotations

import html
import importlib
import re

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import CommandError
from django.urls import reverse

from core.models import AuditEntry
from domains import passwords, services
from domains.models import Domain, KeptMaildir, Mailbox
from tests.conftest import EDITOR, MAILBOX_PASSWORD, apps_at

NEW_PASSWORD = "Tr0ubadour horse staple"
REFUSAL = "bob@a.example cannot be used; ask a superadmin."


@pytest.fixture
def bob_deleted(world, settings):
    settings.MAILADMIN_VMAIL_DIR = "/var/vmail"
    services.delete_mailbox(actor="t", mailbox=world.bob)
    return "/var/vmail/a.example/bob"


def text(response) -> str:
    return html.unescape(response.content.decode())


def test_the_delete_records_the_kept_maildir(bob_deleted):
    kept = KeptMaildir.objects.get()
    assert (kept.address, kept.path, kept.removed_at, kept.reused_at) == (
        "bob@a.example", bob_deleted, None, None)


def test_the_service_refuses_the_address_without_an_explicit_choice(bob_deleted):
    with pytest.raises(ValidationError) as refused:
        services.create_mailbox(actor="t", email="bob@a.example", password=NEW_PASSWORD)
    assert refused.value.messages == [REFUSAL]
    assert not Mailbox.objects.filter(email="bob@a.example").exists()


def test_reusing_the_kept_maildir_is_recorded(bob_deleted):
    services.create_mailbox(actor="root", email="bob@a.example", password=NEW_PASSWORD,
                            reuse_kept_maildir=True)
    row = AuditEntry.objects.filter(action="mailbox.create", object_repr="bob@a.example"
                                    ).latest("id")
    assert row.after["maildir_reused"] == bob_deleted
    assert KeptMaildir.objects.get().reused_at is not None
    # Deleted again, it is kept again, and refused again.
    services.delete_mailbox(actor="t", mailbox=Mailbox.objects.get(email="bob@a.example"))
    with pytest.raises(ValidationError, match="cannot be used"):
        services.create_mailbox(actor="t", email="bob@a.example", password=NEW_PASSWORD)


def test_a_forced_domain_delete_keeps_its_maildirs_too(world):
    services.delete_domain(actor="t", domain=world.b, force=True)
    services.create_domain(actor="t", name="b.example", kept_maildirs="reserve")
    with pytest.raises(ValidationError, match=re.escape("carol@b.example cannot be used")):
        services.create_mailbox(actor="t", email="carol@b.example", password=NEW_PASSWORD)


def test_forgetting_the_maildir_frees_the_address(bob_deleted):
    assert services.forget_kept_maildir(actor="root", address="Bob@A.example") == [bob_deleted]
    row = AuditEntry.objects.get(action="mailbox.maildir_removed")
    assert (row.domain, row.domain_ref, row.after["path"]) == ("a.example", None, bob_deleted)
    created = services.create_mailbox(actor="t", email="bob@a.example", password=NEW_PASSWORD)
    assert "maildir_reused" not in AuditEntry.objects.filter(
        action="mailbox.create", object_id=created.pk).get().after
    with pytest.raises(ValidationError, match=re.escape("No kept Maildir is recorded for bob@")):
        services.forget_kept_maildir(actor="root", address="bob@a.example")


def test_a_domain_admin_is_told_to_ask_a_superadmin(world, bob_deleted):
    alice = world.client_for("admin_a")
    url = reverse("domains:mailbox-create", args=["a.example"])
    data = {"local_part": "bob", "password": NEW_PASSWORD, "password_again": NEW_PASSWORD,
            "reuse_kept_maildir": "on"}
    response = alice.post(url, data)
    assert response.status_code == 200
    assert REFUSAL in text(response)
    assert bob_deleted not in text(response) and "reuse_kept_maildir" not in text(response)
    assert not Mailbox.objects.filter(email="bob@a.example").exists()
    check = alice.get(reverse("domains:mailbox-check", args=["a.example"]),
                      {"local_part": "bob"})
    assert REFUSAL in text(check)


def test_the_superadmin_chooses_on_the_form(world, bob_deleted):
    root = world.client_for("superadmin")
    url = reverse("domains:mailbox-create", args=["a.example"])
    data = {"local_part": "bob", "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    assert "reuse_kept_maildir" not in text(root.get(url))
    first = root.post(url, data)
    assert first.status_code == 200
    assert REFUSAL in text(first)
    assert 'name="reuse_kept_maildir"' in text(first) and bob_deleted in text(first)
    assert not Mailbox.objects.filter(email="bob@a.example").exists()
    second = root.post(url, {**data, "reuse_kept_maildir": "on"})
    assert second.status_code == 302
    assert AuditEntry.objects.filter(action="mailbox.create", object_repr="bob@a.example"
                                     ).latest("id").after["maildir_reused"] == bob_deleted


def test_the_command_line(world, bob_deleted, cli):
    with pytest.raises(CommandError) as refused:
        cli("mailbox", "add", "bob@a.example", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    message = str(refused.value)
    assert "\n" not in message
    assert bob_deleted in message and "--reuse-kept-maildir" in message
    assert "forget-maildir bob@a.example" in message
    assert "bob@a.example\t" in cli("mailbox", "kept")
    assert "recorded as removed: /var/vmail/a.example/bob" in cli(
        "mailbox", "forget-maildir", "bob@a.example")
    assert cli("mailbox", "kept") == ""
    cli("mailbox", "add", "bob@a.example", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    services.delete_mailbox(actor="t", mailbox=Mailbox.objects.get(email="bob@a.example"))
    cli("mailbox", "add", "bob@a.example", "--password-stdin", "--reuse-kept-maildir",
        stdin=NEW_PASSWORD + "\n")
    assert KeptMaildir.objects.filter(reused_at__isnull=False).count() == 1


def test_the_import_refuses_the_address_per_row(world, bob_deleted):
    root = world.client_for("superadmin")
    content = f"email,password\nbob@a.example,{NEW_PASSWORD}\ndora@a.example,{NEW_PASSWORD}\n"
    response = root.post(reverse("domains:import", args=["a.example"]), {
        "kind": "mailboxes",
        "file": SimpleUploadedFile("f.csv", content.encode(), content_type="text/csv")})
    errors = {row.line: row.errors for row in response.context["preview"].shown}
    assert errors == {2: [REFUSAL]}
    with pytest.raises(ValidationError) as refused:
        services.import_mailboxes(actor="t", domain=world.a, rows=[services.MailboxImport(
            email="bob@a.example", password_hash=passwords.hash_password(MAILBOX_PASSWORD))])
    assert refused.value.messages == [REFUSAL]


def test_the_migration_reads_kept_maildirs_from_the_audit_log(world, settings):
    settings.MAILADMIN_VMAIL_DIR = "/var/vmail"
    services.delete_mailbox(actor="t", mailbox=world.bob)  # kept, open
    services.delete_mailbox(actor="t", mailbox=world.carol)
    services.forget_kept_maildir(actor="t", address="carol@b.example")
    services.create_mailbox(actor="t", email="carol@b.example", password=NEW_PASSWORD)
    KeptMaildir.objects.all().delete()  # as before the table existed
    migration = importlib.import_module("domains.migrations.0004_kept_maildirs")
    migration.fill_from_audit(apps_at("domains", "0004_kept_maildirs"), EDITOR)
    rows = {k.address: k for k in KeptMaildir.objects.all()}
    assert rows["bob@a.example"].is_open
    assert rows["bob@a.example"].path == "/var/vmail/a.example/bob"
    # carol@b.example exists again: her old Maildir counts as reused, not open.
    assert not rows["carol@b.example"].is_open


# Issue 8 review, item 1: kept Maildirs belong to a domain (its id), not to a name.


def test_a_delete_records_the_domain_of_the_kept_maildir(world):
    services.delete_mailbox(actor="t", mailbox=world.bob)
    services.delete_domain(actor="t", domain=world.b, force=True)
    assert dict(KeptMaildir.objects.values_list("address", "domain_ref")) == {
        "bob@a.example": world.a.pk, "carol@b.example": world.b.pk}


def test_a_domain_admin_is_not_told_an_earlier_domains_kept_maildirs(world):
    """Rows of an earlier domain of the same name are no answer to this domain's admin."""
    earlier = world.a.pk + 1000
    KeptMaildir.objects.create(address="dora@a.example", path="/var/vmail/a.example/dora",
                               deleted_at=world.a.created, domain_ref=earlier)
    alice = world.client_for("admin_a")
    check = alice.get(reverse("domains:mailbox-check", args=["a.example"]),
                      {"local_part": "dora"})
    assert "dora@a.example is free." in text(check)
    content = f"email,password\ndora@a.example,{NEW_PASSWORD}\n"
    response = alice.post(reverse("domains:import", args=["a.example"]), {
        "kind": "mailboxes",
        "file": SimpleUploadedFile("f.csv", content.encode(), content_type="text/csv")})
    assert [row.errors for row in response.context["preview"].shown] == [[]]


def test_recreating_a_domain_with_kept_maildirs_needs_a_choice(world):
    services.delete_domain(actor="t", domain=world.b, force=True)
    with pytest.raises(ValidationError) as refused:
        services.create_domain(actor="t", name="b.example")
    message = " ".join(refused.value.messages)
    assert "1 kept Maildir" in message and "reserve" in message and "remove" in message
    with pytest.raises(ValidationError, match="reserve or remove"):
        services.create_domain(actor="t", name="b.example", kept_maildirs="maybe")
    assert not Domain.objects.filter(name="b.example").exists()


def test_reserved_kept_maildirs_stay_refused_in_the_new_domain(world):
    services.delete_domain(actor="t", domain=world.b, force=True)
    new_b = services.create_domain(actor="t", name="b.example", kept_maildirs="reserve")
    assert KeptMaildir.objects.get().domain_ref == new_b.pk
    # Superadmins see what was reserved; the new domain's history says nothing of it.
    reserved = AuditEntry.objects.get(action="mailbox.maildirs_reserved")
    assert (reserved.domain_ref, reserved.after) == (None, {"addresses": ["carol@b.example"]})
    assert not AuditEntry.objects.filter(domain_ref=new_b.pk).exclude(
        action="domain.create").exists()
    assert "kept" not in str(AuditEntry.objects.get(action="domain.create",
                                                    domain_ref=new_b.pk).after)
    with pytest.raises(ValidationError, match=re.escape("carol@b.example cannot be used")):
        services.create_mailbox(actor="t", email="carol@b.example", password=NEW_PASSWORD)


def test_removed_kept_maildirs_free_the_addresses_with_superadmin_only_rows(world, settings):
    settings.MAILADMIN_VMAIL_DIR = "/var/vmail"
    services.delete_domain(actor="t", domain=world.b, force=True)
    new_b = services.create_domain(actor="t", name="b.example", kept_maildirs="remove")
    assert KeptMaildir.objects.get().removed_at is not None
    removed = AuditEntry.objects.get(action="mailbox.maildir_removed")
    assert (removed.object_repr, removed.domain_ref) == (
        "carol@b.example (/var/vmail/b.example/carol)", None)
    assert not AuditEntry.objects.filter(domain_ref=new_b.pk).exclude(
        action="domain.create").exists()
    services.create_mailbox(actor="t", email="carol@b.example", password=NEW_PASSWORD)


def test_the_domain_form_and_command_offer_the_choice(world, cli):
    services.delete_domain(actor="t", domain=world.b, force=True)
    root = world.client_for("superadmin")
    url = reverse("domains:domain-create")
    data = {"name": "b.example", "max_mailboxes": 0, "max_aliases": 0, "max_quota": "0",
            "default_quota": "0"}
    first = root.post(url, data)
    assert first.status_code == 200 and 'name="kept_maildirs"' in text(first)
    second = root.post(url, {**data, "kept_maildirs": "reserve"})
    assert second.status_code == 302
    assert KeptMaildir.objects.get().domain_ref == Domain.objects.get(
        name="b.example").pk
    services.delete_domain(actor="t", domain=Domain.objects.get(name="b.example"))
    with pytest.raises(CommandError) as refused:
        cli("domain", "add", "b.example")
    assert "--kept-maildirs" in str(refused.value) and "\n" not in str(refused.value)
    cli("domain", "add", "b.example", "--kept-maildirs", "remove")
    assert KeptMaildir.objects.get().removed_at is not None


def test_the_migration_fills_in_the_domain_and_reserves_an_earlier_domains_rows(world):
    services.delete_mailbox(actor="t", mailbox=world.bob)
    old_b = world.b.pk
    services.delete_domain(actor="t", domain=world.b, force=True)
    new_b = services.create_domain(actor="t", name="b.example", kept_maildirs="remove")
    KeptMaildir.objects.all().delete()  # as before the table existed
    migration = importlib.import_module("domains.migrations.0004_kept_maildirs")
    migration.fill_from_audit(apps_at("domains", "0004_kept_maildirs"), EDITOR)
    rows = {k.address: k for k in KeptMaildir.objects.all()}
    assert rows["bob@a.example"].domain_ref == world.a.pk
    # b.example was created again before the table existed: the new domain's
    # admin was never told, so the safe reading is "reserved" for the new domain.
    assert old_b != new_b.pk
    assert (rows["carol@b.example"].domain_ref, rows["carol@b.example"].is_open) == (
        new_b.pk, True)
