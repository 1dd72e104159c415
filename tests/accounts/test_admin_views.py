import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.models import AuditEntry
from domains import services
from domains.models import DomainAdmin
from tests.conftest import ADMIN_PASSWORD

PW = "admin passphrase 123"


def test_a_superadmin_adds_a_domain_admin_and_assigns_domains(world):
    client = world.client_for("superadmin")
    response = client.post(reverse("accounts:admin-create"), {
        "username": "Eve@A.example", "password": PW, "password_again": PW,
        "domains": "a.example, b.example"})
    assert response.status_code == 302
    eve = User.objects.get(username="eve@a.example")
    assert sorted(DomainAdmin.objects.filter(user=eve).values_list("domain__name", flat=True)) \
        == ["a.example", "b.example"]
    response = client.post(reverse("accounts:admin-edit", args=[eve.pk]), {"remove": "a.example"})
    assert response.status_code == 302
    assert list(DomainAdmin.objects.filter(user=eve).values_list("domain__name", flat=True)) \
        == ["b.example"]
    eve_client = world.client_for("anonymous")
    eve_client.force_login(eve)
    assert eve_client.get(reverse("domains:domain-detail", args=["a.example"])).status_code == 404
    assert eve_client.get(reverse("domains:domain-detail", args=["b.example"])).status_code == 200


@pytest.mark.parametrize("data, message", [
    ({"domains": "nowhere.example"}, "nowhere.example is not a domain of this server."),
    ({"domains": ""}, "A domain admin needs at least one domain."),
    ({"domains": "a.example", "password_again": "other"}, "The two passwords differ."),
    ({"domains": "a.example", "password": "short", "password_again": "short"},
     "This password is too short."),
])
def test_it_refuses_bad_admin_accounts_with_a_message(world, data, message):
    before = User.objects.count()
    response = world.client_for("superadmin").post(reverse("accounts:admin-create"), {
        "username": "eve@a.example", "password": PW, "password_again": PW, **data})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert User.objects.count() == before


def test_a_superadmin_cannot_be_edited_as_a_domain_admin(world):
    client = world.client_for("superadmin")
    url = reverse("accounts:admin-edit", args=[world.superadmin.pk])
    assert client.get(url).status_code == 404


def test_the_audit_log_filters_and_stays_within_reach(world):
    services.create_mailbox(actor="alice@a.example", email="dan@a.example",
                            password="correct horse battery")
    services.create_mailbox(actor="bert@b.example", email="erin@b.example",
                            password="correct horse battery")
    superadmin = world.client_for("superadmin")
    body = superadmin.get(reverse("accounts:audit"), {"actor": "alice@a.example"}).content.decode()
    assert "dan@a.example" in body and "erin@b.example" not in body
    body = superadmin.get(reverse("accounts:audit"),
                          {"domain": "b.example", "action": "mailbox."}).content.decode()
    assert "erin@b.example" in body and "dan@a.example" not in body
    body = world.client_for("admin_a").get(reverse("accounts:audit")).content.decode()
    assert "dan@a.example" in body and "erin@b.example" not in body
    partial = superadmin.get(reverse("accounts:audit"), HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial
    bad = superadmin.get(reverse("accounts:audit"), {"since": "not a date", "page": "x"})
    assert bad.status_code == 200


def test_the_audit_log_query_count_is_flat(world):
    client = world.client_for("admin_a")
    counts = []
    for extra in (5, 60):
        for i in range(extra):
            services.create_alias(actor="t", source=f"x{extra}-{i}@a.example",
                                  destinations="bob@a.example", checked_domains=None)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("accounts:audit")).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert AuditEntry.objects.count() > 60


NEW_PW = "another admin passphrase 7"


def test_a_superadmin_resets_an_admins_password(world):
    client = world.client_for("superadmin")
    url = reverse("accounts:admin-password", args=[world.admin_a.pk])
    assert client.get(url).status_code == 200
    response = client.post(url, {"password": "short", "password_again": "short"})
    assert response.status_code == 200
    assert "This password is too short." in response.content.decode()
    response = client.post(url, {"password": NEW_PW, "password_again": NEW_PW})
    assert response.status_code == 302
    world.admin_a.refresh_from_db()
    assert world.admin_a.check_password(NEW_PW)
    entry = AuditEntry.objects.get(action="admin.password")
    assert entry.actor == "root@admin.test" and NEW_PW not in str((entry.before, entry.after))


def test_a_superadmin_disables_enables_and_deletes_an_admin(world):
    client = world.client_for("superadmin")
    pk = world.admin_a.pk
    assert client.get(reverse("accounts:admin-edit", args=[pk])).status_code == 200
    url = reverse("accounts:admin-active", args=[pk])
    assert client.post(url, {"active": ""}).status_code == 302
    assert not User.objects.get(pk=pk).is_active
    assert client.post(url, {"active": "on"}).status_code == 302
    assert User.objects.get(pk=pk).is_active
    delete = reverse("accounts:admin-delete", args=[pk])
    assert client.get(delete).status_code == 200
    assert client.post(delete).status_code == 302
    assert not User.objects.filter(pk=pk).exists()
    assert not DomainAdmin.objects.filter(user_id=pk).exists()
    assert AuditEntry.objects.filter(action="admin.delete", object_id=pk).exists()


def test_an_admin_cannot_disable_or_delete_themself(world):
    client = world.client_for("superadmin")
    pk = world.superadmin.pk
    response = client.post(reverse("accounts:admin-active", args=[pk]), {"active": ""})
    assert response.status_code == 302
    assert "You cannot disable your own account." in client.get(
        reverse("accounts:admin-list")).content.decode()
    response = client.post(reverse("accounts:admin-delete", args=[pk]))
    assert response.status_code == 400
    assert "You cannot delete your own account." in response.content.decode()
    assert User.objects.get(pk=pk).is_active


def test_the_last_active_superadmin_stays(world):
    from accounts import services as account_services

    other = account_services.create_admin(actor="t", username="second@admin.test",
                                          password=NEW_PW, superadmin=True)
    client = world.client_for("anonymous")
    client.force_login(other)
    assert client.post(reverse("accounts:admin-active", args=[world.superadmin.pk]),
                       {"active": ""}).status_code == 302
    assert not User.objects.get(pk=world.superadmin.pk).is_active
    # `other` is now the last active superadmin; the service refuses even the command line.
    with pytest.raises(ValidationError, match="last active superadmin"):
        account_services.set_admin_active(actor="cli:root", user=other, active=False)
    with pytest.raises(ValidationError, match="last active superadmin"):
        account_services.delete_admin(actor="cli:root", user=other)
    assert User.objects.get(pk=other.pk).is_active


@pytest.mark.parametrize("persona", ["admin_a", "admin_b", "mailbox"])
def test_account_writes_are_404_below_superadmin(world, persona):
    client = world.client_for(persona)
    pk = world.admin_b.pk
    assert client.post(reverse("accounts:admin-active", args=[pk]), {}).status_code == 404
    assert client.post(reverse("accounts:admin-delete", args=[pk])).status_code == 404
    assert client.post(reverse("accounts:admin-password", args=[pk]),
                       {"password": NEW_PW, "password_again": NEW_PW}).status_code == 404
    world.admin_b.refresh_from_db()
    assert world.admin_b.is_active and world.admin_b.check_password(ADMIN_PASSWORD)
