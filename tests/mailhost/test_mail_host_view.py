from __future__ import annotations

import pytest
from django.urls import reverse

from core.models import AuditEntry
from mailhost.models import MailHost

URL = "/mail-host/"
GOOD = {
    "mail_hostname": "MX.Example.NET.",
    "mx_hosts": "mx1.example.net, mx2.example.net mx1.example.net",
    "public_ipv4": "192.0.2.10",
    "public_ipv6": "2001:DB8:0::10",
    "vmail_dir": "/srv/vmail",
    "vmail_uid": "5001",
    "vmail_gid": "5002",
    "daemon_database": "",
}


def test_it_is_the_named_url():
    assert reverse("mailhost:mail-host") == URL


def test_it_shows_the_host_to_a_superadmin(world, settings):
    settings.MAILADMIN_MAIL_HOSTNAME = "mail.example.org"

    response = world.client_for("superadmin").get(URL)

    assert response.status_code == 200
    assert 'value="mail.example.org"' in response.content.decode()
    assert 'href="/mail-host/"' in response.content.decode()


def test_it_saves_what_a_superadmin_sends(world):
    response = world.client_for("superadmin").post(URL, GOOD)

    assert response.status_code == 302
    assert response["Location"] == URL
    host = MailHost.current()
    assert (host.mail_hostname, host.mx_hosts) == (
        "mx.example.net", ["mx1.example.net", "mx2.example.net"])
    assert (host.public_ipv4, host.public_ipv6) == (["192.0.2.10"], ["2001:db8::10"])
    assert (host.vmail_dir, host.vmail_uid, host.vmail_gid) == ("/srv/vmail", 5001, 5002)
    row = AuditEntry.objects.get(action="mailhost.update")
    assert row.actor == "root@admin.test"
    audit = world.client_for("superadmin").get(reverse("accounts:audit"))
    assert audit.status_code == 200
    assert "mailhost.update" in audit.content.decode()


@pytest.mark.parametrize("persona", ["admin_a", "admin_b", "mailbox"])
def test_it_is_not_found_for_anyone_else(world, persona):
    MailHost.current()
    before = MailHost.objects.values().get()
    client = world.client_for(persona)

    assert client.get(URL).status_code == 404
    assert client.post(URL, GOOD).status_code == 404
    assert MailHost.objects.values().get() == before
    assert not AuditEntry.objects.filter(action="mailhost.update").exists()


def test_it_sends_anonymous_users_to_sign_in(world):
    response = world.client_for("anonymous").get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize(("field", "value"), [
    ("mail_hostname", "not a host"),
    ("mx_hosts", "mx.example.net, bad_name"),
    ("public_ipv4", "192.0.2.300"),
    ("public_ipv6", "192.0.2.1"),
    ("vmail_dir", "vmail"),
    ("vmail_dir", "/var/v'mail"),
    ("vmail_uid", "0"),
    ("vmail_gid", "-5"),
    ("vmail_uid", "lots"),
    ("daemon_database", "mysql://ro:secret@127.0.0.1/mail"),
    ("daemon_database", "ftp://example.org/"),
])
def test_bad_input_is_a_form_error(world, field, value):
    MailHost.current()
    before = MailHost.objects.values().get()

    response = world.client_for("superadmin").post(URL, {**GOOD, field: value})

    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert MailHost.objects.values().get() == before
    assert not AuditEntry.objects.filter(action="mailhost.update").exists()
