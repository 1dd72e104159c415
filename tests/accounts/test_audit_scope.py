"""Audit rows belong to a domain's identity, not its name (issue 8, item 6).

A re-created `old.example` is a new domain: its admin must not read the
history (mailbox names, kept Maildir paths) of the deleted one.
"""

from __future__ import annotations

import datetime
import importlib

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import services as account_services
from core.models import AuditEntry
from domains import services
from domains.models import Domain
from tests.conftest import ADMIN_PASSWORD, EDITOR, MAILBOX_PASSWORD, apps_at


@pytest.fixture
def recreated(world):
    """old.example with a mailbox, deleted with force, then created anew with a new admin."""
    old = services.create_domain(actor="t", name="old.example")
    services.create_mailbox(actor="t", email="previous.person@old.example",
                            password=MAILBOX_PASSWORD)
    services.delete_domain(actor="t", domain=old, force=True)
    new = services.create_domain(actor="t", name="old.example", kept_maildirs="remove")
    admin = account_services.create_admin(actor="t", username="nina@old.example",
                                          password=ADMIN_PASSWORD, domains=[new])
    return new, admin


def test_rows_carry_the_domain_id(world):
    row = AuditEntry.objects.filter(action="mailbox.create", object_repr="bob@a.example").get()
    assert (row.domain, row.domain_ref) == ("a.example", world.a.pk)
    services.delete_mailbox(actor="t", mailbox=world.bob)
    row = AuditEntry.objects.get(action="mailbox.delete")
    assert (row.domain, row.domain_ref) == ("a.example", world.a.pk)


def test_the_new_admin_does_not_read_the_deleted_domain_history(recreated, client):
    _new, admin = recreated
    client.force_login(admin)
    for url in (reverse("accounts:audit"), reverse("accounts:audit") + "?domain=old.example",
                reverse("home")):
        body = client.get(url).content.decode()
        assert "previous.person" not in body, url
        assert "/var/vmail" not in body and "maildir" not in body.lower(), url
    body = client.get(reverse("accounts:audit")).content.decode()
    assert "domain.create" in body  # the new domain's own history is there


def test_the_superadmin_reads_both(recreated, world):
    body = world.client_for("superadmin").get(reverse("accounts:audit"),
                                              {"domain": "old.example"}).content.decode()
    assert "previous.person@old.example" in body


def test_a_domain_admin_still_reads_their_domain_history(world):
    body = world.client_for("admin_a").get(reverse("accounts:audit")).content.decode()
    assert "bob@a.example" in body
    assert "carol@b.example" not in body
    home = world.client_for("admin_a").get(reverse("home")).content.decode()
    assert "bob@a.example" in home and "carol@b.example" not in home


def test_the_migration_fills_ids_only_for_rows_of_the_current_domain(world):
    migration = importlib.import_module("accounts.migrations.0003_audit_domain_ref")
    before = timezone.now() - datetime.timedelta(days=30)
    old_row = AuditEntry.objects.create(actor="t", action="mailbox.delete", object_type="mailbox",
                                        object_repr="gone@a.example", domain="a.example",
                                        after={"maildir_kept": "/var/vmail/a.example/gone"})
    AuditEntry.objects.filter(pk=old_row.pk).update(at=before)  # before a.example was created
    AuditEntry.objects.update(domain_ref=None)
    migration.fill_domain_ref(apps_at("accounts", "0003_audit_domain_ref"), EDITOR)
    assert AuditEntry.objects.get(pk=old_row.pk).domain_ref is None
    bob_row = AuditEntry.objects.get(action="mailbox.create", object_repr="bob@a.example")
    assert bob_row.domain_ref == world.a.pk
    assert not AuditEntry.objects.filter(domain="gone.example").exists()
    assert Domain.objects.count() == 2
