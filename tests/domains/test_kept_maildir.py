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
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import CommandError
from django.urls import reverse

from accounts.models import AuditEntry
from domains import passwords, services
from domains.models import KeptMaildir, Mailbox
from tests.conftest import MAILBOX_PASSWORD

NEW_PASSWORD = "Tr0ubadour horse staple"
REFUSAL = "A previous mailbox's mail is kept for bob@a.example; ask a superadmin."


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
    with pytest.raises(ValidationError, match="mail is kept"):
        services.create_mailbox(actor="t", email="bob@a.example", password=NEW_PASSWORD)


def test_a_forced_domain_delete_keeps_its_maildirs_too(world):
    services.delete_domain(actor="t", domain=world.b, force=True)
    services.create_domain(actor="t", name="b.example")
    with pytest.raises(ValidationError, match=re.escape("mail is kept for carol@b.example")):
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
    response = root.post(reverse("csv:import", args=["a.example"]), {
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
    migration.fill_from_audit(apps, None)
    rows = {k.address: k for k in KeptMaildir.objects.all()}
    assert rows["bob@a.example"].is_open
    assert rows["bob@a.example"].path == "/var/vmail/a.example/bob"
    # carol@b.example exists again: her old Maildir counts as reused, not open.
    assert not rows["carol@b.example"].is_open
