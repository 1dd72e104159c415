"""App passwords in the panel: services, pages, permissions, hostile input,
and the proof that an app password never signs in to the panel."""

from __future__ import annotations

import hashlib

import pytest
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse

from apppasswords import models, services
from apppasswords.models import AppPassword
from core.actor import Actor
from core.models import AuditEntry
from domains import passwords
from mailhost import app_password_lookup, render
from tests.conftest import MAILBOX_PASSWORD

pytestmark = pytest.mark.django_db


def create(mailbox, *protocols, name="Phone"):
    return services.create_app_password(actor=Actor.mailbox(mailbox.email), mailbox=mailbox,
                                        name=name, protocols=list(protocols or ["imap"]))


def test_the_token_starts_with_its_unique_selector_and_only_its_hash_is_kept(world):
    created = create(world.bob, "imap", "smtp")
    row = created.app_password
    assert len(created.token) == models.SELECTOR_LENGTH + models.SECRET_LENGTH
    assert created.token.startswith(row.selector)
    assert set(created.token) <= set(models.ALPHABET)
    assert created.token not in row.password and passwords.verify_password(
        created.token, row.password)
    assert (row.imap, row.smtp, row.sieve) == (True, True, False)
    entry = AuditEntry.objects.get(action="mailbox.app_password_create")
    assert created.token not in str(entry.__dict__) and row.password not in str(entry.__dict__)


@pytest.mark.parametrize("login_cache", [True, False])
def test_the_query_finds_the_row_by_a_salted_hash_and_holds_no_password(login_cache):
    query = render.dovecot_app_password_query(login_cache=login_cache)
    salt = app_password_lookup.lookup_salt()
    assert f"a.lookup = '%{{sha256;salt={salt}:password}}'" in query
    # The typed password appears only inside the hash modifier: no %w, no
    # %{password}, no other modifier of it (SUBSTR, %{password:...}).
    without_hash = query.replace(f"%{{sha256;salt={salt}:password}}", "")
    assert "%w" not in without_hash and "password}" not in without_hash
    assert "selector" not in query and "SUBSTR" not in query
    assert "a.revoked IS NULL" in query and "u.active = 1" in query and "d.active = 1" in query
    assert "%s" in query


def test_the_salt_is_hex_derived_from_the_secret_key_and_its_own(settings):
    salt = app_password_lookup.lookup_salt()
    # Dovecot var-expands the salt and ends it at , : } (var-expand.c): hex only.
    assert len(salt) == 64 and set(salt) <= set("0123456789abcdef")
    assert salt not in settings.SECRET_KEY
    settings.SECRET_KEY = "another install's key " * 3
    assert app_password_lookup.lookup_salt() != salt


def test_the_lookup_is_what_dovecots_sha256_modifier_gives():
    # Dovecot 2.3.19.1's %{sha256;salt=SALT:password} (var-expand.c,
    # var_expand_hash): one SHA-256 round over the salt's text then the
    # password, lowercase hex. These values are doveadm's own output
    # (a static passdb with default_fields = lookup=%{sha256;salt=...:password},
    # `doveadm auth test` printing the field); the real-daemon logins in
    # tests/integration/test_app_passwords.py prove it end to end.
    assert hashlib.sha256(b"0a1bc2" + b"abcd2345efgh6789abcdefghjkmnpqrs").hexdigest() == (
        "986c095ca2b5b1102d90a888f8f4ce575dbb030be1a6d2b7f986daf2fa8b037e")
    token = "abcd2345efgh6789abcdefghjkmnpqrs"
    salt = app_password_lookup.lookup_salt()
    assert app_password_lookup.lookup_value(token) == hashlib.sha256(
        (salt + token).encode()).hexdigest()


def test_a_new_row_stores_the_lookup_of_its_token(world):
    created = create(world.bob)
    assert created.app_password.lookup == app_password_lookup.lookup_value(created.token)
    entry = AuditEntry.objects.get(action="mailbox.app_password_create")
    assert created.app_password.lookup not in str(entry.__dict__)


@pytest.mark.parametrize("login_cache", [True, False])
def test_the_main_query_leaves_a_required_domain_out(login_cache):
    from mailhost.models import MailHost
    query = render.dovecot_queries("sqlite", MailHost.current(),
                                   login_cache=login_cache)["password_query"]
    assert "require_app_passwords" in query


def test_revoking_keeps_the_row_flushes_the_cache_and_audits(
        world, django_capture_on_commit_callbacks, monkeypatch):
    flushed = []
    monkeypatch.setattr("mailhost.auth_cache.send", lambda addresses: flushed.append(addresses))
    row = create(world.bob).app_password
    with django_capture_on_commit_callbacks(execute=True):
        services.revoke_app_password(actor=Actor.mailbox(world.bob.email), app_password=row)
    row.refresh_from_db()
    assert row.revoked is not None
    assert flushed == [["bob@a.example"]]
    assert AuditEntry.objects.filter(action="mailbox.app_password_revoke").count() == 1
    # A second revocation changes nothing and writes nothing.
    services.revoke_app_password(actor=Actor.mailbox(world.bob.email), app_password=row)
    assert AuditEntry.objects.filter(action="mailbox.app_password_revoke").count() == 1


@pytest.mark.parametrize("name, protocols", [
    ("", ["imap"]), ("   ", ["imap"]), ("x" * 101, ["imap"]), ("tab\there\x00", ["imap"]),
    ("Phone", []), ("Phone", ["pop3"]), ("Phone", ["imap", "'; DROP TABLE users"]),
])
def test_bad_input_is_refused(world, name, protocols):
    with pytest.raises(ValidationError):
        services.create_app_password(actor=Actor.mailbox("t"), mailbox=world.bob, name=name,
                                     protocols=protocols)
    assert not AppPassword.objects.exists()


def test_live_app_passwords_are_bounded_and_names_unique(world, monkeypatch):
    monkeypatch.setattr(services, "LIVE_MAX", 2)
    create(world.bob, name="one")
    with pytest.raises(ValidationError):
        create(world.bob, name="one")
    create(world.bob, name="two")
    with pytest.raises(ValidationError):
        create(world.bob, name="three")


def test_an_app_password_never_signs_in_to_the_panel(world):
    token = create(world.bob, "imap", "smtp", "sieve").token
    client = Client()
    assert not client.login(request=HttpRequest(), username="bob@a.example", password=token)
    response = client.post(reverse("login"), {"username": "bob@a.example", "password": token})
    assert response.status_code == 200  # the sign-in form again, no session
    assert "_auth_user_id" not in client.session
    # The main password still does, also when the domain requires app passwords.
    services.set_app_passwords_required(actor=Actor.account("t"), domain=world.a, required=True)
    assert client.login(request=HttpRequest(), username="bob@a.example",
                        password=MAILBOX_PASSWORD)


def test_the_user_creates_sees_once_and_revokes(world):
    client = world.client_for("mailbox")
    url = reverse("apppasswords:own")
    response = client.post(url, {"name": "Laptop", "protocols": ["imap", "sieve"]})
    assert response.status_code == 200
    row = AppPassword.objects.get(mailbox=world.bob)
    token = response.context["token"]
    assert token.startswith(row.selector) and token in response.content.decode()
    assert 'data-copy="app-password"' in response.content.decode()
    listing = client.get(url).content.decode()
    assert "Laptop" in listing and token not in listing and "IMAP, Sieve" in listing
    response = client.post(reverse("apppasswords:own-revoke", args=[row.pk]))
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.revoked is not None


def test_the_admin_manages_them_on_the_mailbox_page(world):
    client = world.client_for("admin_a")
    url = reverse("apppasswords:mailbox", args=["bob@a.example"])
    assert client.post(url, {"name": "Desk", "protocols": ["smtp"]}).status_code == 200
    row = AppPassword.objects.get(mailbox=world.bob)
    assert AuditEntry.objects.get(action="mailbox.app_password_create").actor == "alice@a.example"
    revoke = reverse("apppasswords:mailbox-revoke", args=["bob@a.example", row.pk])
    assert client.post(revoke).status_code == 302
    row.refresh_from_db()
    assert row.revoked is not None


def test_nobody_reaches_another_mailboxs_app_passwords(world):
    row = create(world.carol).app_password  # in b.example
    for persona in ("admin_a", "mailbox"):
        client = world.client_for(persona)
        assert client.post(reverse("apppasswords:mailbox-revoke",
                                   args=["carol@b.example", row.pk])).status_code == 404
        assert client.post(reverse("apppasswords:own-revoke", args=[row.pk])).status_code == 404
        assert client.post(reverse("apppasswords:mailbox", args=["carol@b.example"]),
                           {"name": "x", "protocols": ["imap"]}).status_code == 404
    # bob's own revoke URL with carol's row, as admin of a.example on bob's page: 404 too.
    admin = world.client_for("admin_a")
    assert admin.post(reverse("apppasswords:mailbox-revoke",
                              args=["bob@a.example", row.pk])).status_code == 404
    row.refresh_from_db()
    assert row.revoked is None


@pytest.mark.parametrize("data", [
    {}, {"name": ""}, {"name": "x" * 5000, "protocols": ["imap"]},
    {"name": "ok", "protocols": ["ftp"]}, {"name": "ok"}, {"name": "\x00", "protocols": "imap"},
])
def test_hostile_form_input_gives_a_form_error(world, data):
    for persona, url in (("mailbox", reverse("apppasswords:own")),
                         ("superadmin", reverse("apppasswords:mailbox", args=["bob@a.example"]))):
        response = world.client_for(persona).post(url, data)
        assert response.status_code == 400, (persona, data)
    assert not AppPassword.objects.exists()


def test_an_admin_requires_app_passwords_for_a_domain(world):
    client = world.client_for("admin_a")
    url = reverse("apppasswords:domain-required", args=["a.example"])
    assert client.post(url, {"required": "on"}).status_code == 302
    world.a.refresh_from_db()
    assert world.a.require_app_passwords
    assert client.post(url, {"required": "maybe'; --"}).status_code == 302
    world.a.refresh_from_db()
    assert world.a.require_app_passwords  # "maybe" is a true checkbox value; nothing broke
    assert client.post(url, {}).status_code == 302
    world.a.refresh_from_db()
    assert not world.a.require_app_passwords
    assert AuditEntry.objects.filter(action="domain.app_passwords_required").count() == 2
    other = reverse("apppasswords:domain-required", args=["b.example"])
    assert client.post(other, {"required": "on"}).status_code == 404
    world.b.refresh_from_db()
    assert not world.b.require_app_passwords


def test_deleting_the_mailbox_or_its_domain_deletes_its_app_passwords(world):
    from domains import services as domain_services

    create(world.bob)
    create(world.carol)
    domain_services.delete_mailbox(actor="t", mailbox=world.bob)
    assert not AppPassword.objects.filter(mailbox__email="bob@a.example").exists()
    domain_services.delete_domain(actor="t", domain=world.b, force=True)
    assert not AppPassword.objects.exists()


@pytest.mark.parametrize("persona, url_name", [("mailbox", "own"), ("admin_a", "mailbox")])
def test_hostile_names_give_a_form_error_or_a_clean_row(world, persona, url_name):
    from tests.mailadmin.test_hostile_input import HOSTILE

    client = world.client_for(persona)
    url = reverse(f"apppasswords:{url_name}", args=[] if url_name == "own" else ["bob@a.example"])
    for value in HOSTILE:
        response = client.post(url, {"name": value, "protocols": ["imap", value]})
        assert response.status_code == 400, value  # the protocol is refused either way
        response = client.post(url, {"name": value, "protocols": ["imap"]})
        assert response.status_code in (200, 400), value
    for row in AppPassword.objects.all():
        assert row.name.isprintable() and len(row.name) <= services.NAME_MAX
    AppPassword.objects.all().delete()
