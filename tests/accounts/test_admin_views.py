import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import AuditEntry, DomainAdmin
from domains import services

PW = "admin passphrase 123"


def test_a_superadmin_adds_a_domain_admin_and_assigns_domains(world):
    client = world.client_for("superadmin")
    response = client.post(reverse("admins:admin-create"), {
        "username": "Eve@A.example", "password": PW, "password_again": PW,
        "domains": "a.example, b.example"})
    assert response.status_code == 302
    eve = User.objects.get(username="eve@a.example")
    assert sorted(DomainAdmin.objects.filter(user=eve).values_list("domain__name", flat=True)) \
        == ["a.example", "b.example"]
    response = client.post(reverse("admins:admin-edit", args=[eve.pk]), {"domains": "b.example"})
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
    response = world.client_for("superadmin").post(reverse("admins:admin-create"), {
        "username": "eve@a.example", "password": PW, "password_again": PW, **data})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert User.objects.count() == before


def test_a_superadmin_cannot_be_edited_as_a_domain_admin(world):
    client = world.client_for("superadmin")
    url = reverse("admins:admin-edit", args=[world.superadmin.pk])
    assert client.get(url).status_code == 404


def test_the_audit_log_filters_and_stays_within_reach(world):
    services.create_mailbox(actor="alice@a.example", email="dan@a.example",
                            password="correct horse battery")
    services.create_mailbox(actor="bert@b.example", email="erin@b.example",
                            password="correct horse battery")
    superadmin = world.client_for("superadmin")
    body = superadmin.get(reverse("admins:audit"), {"actor": "alice@a.example"}).content.decode()
    assert "dan@a.example" in body and "erin@b.example" not in body
    body = superadmin.get(reverse("admins:audit"),
                          {"domain": "b.example", "action": "mailbox."}).content.decode()
    assert "erin@b.example" in body and "dan@a.example" not in body
    body = world.client_for("admin_a").get(reverse("admins:audit")).content.decode()
    assert "dan@a.example" in body and "erin@b.example" not in body
    partial = superadmin.get(reverse("admins:audit"), HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial
    bad = superadmin.get(reverse("admins:audit"), {"since": "not a date", "page": "x"})
    assert bad.status_code == 200


def test_the_audit_log_query_count_is_flat(world):
    client = world.client_for("admin_a")
    counts = []
    for extra in (5, 60):
        for i in range(extra):
            services.create_alias(actor="t", source=f"x{extra}-{i}@a.example",
                                  destinations="bob@a.example")
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("admins:audit")).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert AuditEntry.objects.count() > 60
