"""Mailbox users in the panel: signing in with the mail password, their page, their password."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from passlib.hash import sha512_crypt

from core.models import AuditEntry
from domains import passwords, services
from domains.models import Mailbox
from tests.conftest import ADMIN_PASSWORD, MAILBOX_PASSWORD

STRONG = "Tr0ub4dor&3-staple-Horse"
HASH_MARKERS = ("{BLF-CRYPT}", "{SHA512-CRYPT}", "$2y$", "$2b$", "$6$")
LOGIN_ERROR = "That name and password do not match, or the account is disabled."


@pytest.fixture(autouse=True)
def fast_admin_hashing(settings):
    """The world's three admin passwords with a cheap hasher: PBKDF2 costs ~1 s a test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_in(client: Client, username: str, password: str) -> Any:
    return client.post(reverse("login"), {"username": username, "password": password})


def signed_in_user(client: Client) -> User | None:
    user_id = client.session.get("_auth_user_id")
    return None if user_id is None else User.objects.get(pk=user_id)


def change_password(client: Client, current: str, new: str, again: str | None = None) -> Any:
    return client.post(reverse("accounts:password"), {
        "current": current, "new": new, "new_again": new if again is None else again})


def stored_hash(email: str = "bob@a.example") -> str:
    return Mailbox.objects.get(email=email).password


# ---------------------------------------------------------------- signing in


@pytest.mark.parametrize("username", ["bob@a.example", "Bob@A.example", "BOB@A.EXAMPLE"])
def test_it_signs_a_mailbox_user_in_with_the_mail_password(world, username):
    services.update_mailbox(actor="t", mailbox=world.bob, name="Bob B", quota="2G")
    client = Client()
    response = sign_in(client, username, MAILBOX_PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    user = signed_in_user(client)
    assert user is not None
    assert user.username == f"mailbox:{world.bob.pk}"
    assert user.email == "bob@a.example"
    assert not user.has_usable_password()

    home = client.get(reverse("home"))
    assert home.status_code == 302
    assert home["Location"] == reverse("accounts:me")
    me = client.get(reverse("accounts:me"))
    assert me.status_code == 200
    assert me.context["mailbox"].email == "bob@a.example"
    text = me.content.decode()
    assert "2.0\xa0GB" in text
    assert "Bob B" in text
    assert AuditEntry.objects.filter(action="mailbox.first_sign_in",
                                     actor="bob@a.example").count() == 1


def test_it_makes_one_session_account_however_often_bob_signs_in(world):
    for username in ("bob@a.example", "Bob@A.example"):
        assert sign_in(Client(), username, MAILBOX_PASSWORD).status_code == 302
    assert User.objects.filter(username__startswith="mailbox:").count() == 1
    assert AuditEntry.objects.filter(action="mailbox.first_sign_in").count() == 1


@pytest.mark.parametrize("username, password", [
    ("bob@a.example", "wrong password 123"),
    ("bob@a.example", MAILBOX_PASSWORD.upper()),
    ("bob@a.example", MAILBOX_PASSWORD + " "),
    ("bob@b.example", MAILBOX_PASSWORD),
    ("bob", MAILBOX_PASSWORD),
    ("mailbox:bob@a.example", MAILBOX_PASSWORD),
    ("bob@a.example\x00", MAILBOX_PASSWORD),
])
def test_it_refuses_a_wrong_password_and_opens_no_session(world, username, password):
    client = Client()
    response = sign_in(client, username, password)
    assert response.status_code == 200
    assert LOGIN_ERROR in response.content.decode()
    assert signed_in_user(client) is None
    assert client.get(reverse("accounts:me"))["Location"].startswith("/login/")
    assert not User.objects.filter(username__startswith="mailbox:").exists()


def test_a_disabled_mailbox_cannot_sign_in(world):
    services.set_mailbox_active(actor="t", mailbox=world.bob, active=False)
    client = Client()
    response = sign_in(client, "bob@a.example", MAILBOX_PASSWORD)
    assert response.status_code == 200
    assert LOGIN_ERROR in response.content.decode()
    assert signed_in_user(client) is None


def test_a_mailbox_of_a_disabled_domain_cannot_sign_in(world):
    services.set_domain_active(actor="t", domain=world.a, active=False)
    client = Client()
    response = sign_in(client, "bob@a.example", MAILBOX_PASSWORD)
    assert response.status_code == 200
    assert LOGIN_ERROR in response.content.decode()
    assert signed_in_user(client) is None
    assert sign_in(Client(), "carol@b.example", MAILBOX_PASSWORD).status_code == 302


@pytest.mark.parametrize("switch_off", ["mailbox", "domain"])
def test_a_session_ends_at_the_next_request_once_disabled(world, switch_off):
    client = Client()
    assert sign_in(client, "bob@a.example", MAILBOX_PASSWORD).status_code == 302
    assert client.get(reverse("accounts:me")).status_code == 200
    if switch_off == "mailbox":
        services.set_mailbox_active(actor="t", mailbox=world.bob, active=False)
    else:
        services.set_domain_active(actor="t", domain=world.a, active=False)
    # The session is ended (tests/accounts/test_sessions.py): every page asks for a sign-in.
    assert client.get(reverse("accounts:me")).status_code == 302
    assert client.get(reverse("accounts:password")).status_code == 302
    response = change_password(client, MAILBOX_PASSWORD, STRONG)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert passwords.verify_password(MAILBOX_PASSWORD, stored_hash())


def test_a_deleted_mailbox_session_is_ended(world):
    client = world.client_for("mailbox")
    services.delete_mailbox(actor="t", mailbox=world.bob)
    response = client.get(reverse("accounts:me"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def long_address_mailbox() -> str:
    domain = services.create_domain(actor="t", name="d" * 63 + "." + "e" * 63 + ".example")
    email = "l" * 64 + "@" + domain.name
    assert len(email) == 200  # valid: addresses may have 254 characters
    services.create_mailbox(actor="t", email=email, password=MAILBOX_PASSWORD)
    return email


def test_a_long_address_gets_a_session_account_that_fits_its_column(world):
    email = long_address_mailbox()
    client = Client()
    response = sign_in(client, email, MAILBOX_PASSWORD)
    assert response.status_code == 302
    assert client.get(reverse("accounts:me")).status_code == 200
    user = signed_in_user(client)
    assert user is not None
    assert len(user.username) <= User._meta.get_field("username").max_length


# ---------------------------------------------------------------- changing the own password


@pytest.mark.parametrize("current, new, again, field, message", [
    ("not my password!", STRONG, None, "current", "That is not your current password."),
    (MAILBOX_PASSWORD.upper(), STRONG, None, "current", "That is not your current password."),
    (MAILBOX_PASSWORD, "Sh0rt!pass", None, "new", "Use at least 12 characters."),
    (MAILBOX_PASSWORD, "my-Bob-mailbox-2024", None, "new",
     "Do not put your address's name in your password."),
    (MAILBOX_PASSWORD, MAILBOX_PASSWORD, None, "new",
     "Choose a password different from the current one."),
    (MAILBOX_PASSWORD, STRONG, STRONG + "x", "new_again", "The two new passwords differ."),
    (MAILBOX_PASSWORD, "é" * 40, None, "new",
     "Use at most 72 bytes, and no control characters."),
    (MAILBOX_PASSWORD, "x\x00" * 8, None, "new", "Null characters are not allowed."),
])
def test_it_refuses_a_password_change(world, current, new, again, field, message):
    client = world.client_for("mailbox")
    before = stored_hash()
    response = change_password(client, current, new, again)
    assert response.status_code == 400
    assert message in response.context["form"].errors[field]
    assert stored_hash() == before
    assert passwords.verify_password(MAILBOX_PASSWORD, stored_hash())
    assert not AuditEntry.objects.filter(action="mailbox.password").exists()


def test_it_shows_the_policy_message_on_the_page(world):
    client = world.client_for("mailbox")
    response = change_password(client, MAILBOX_PASSWORD, "my-bob-mailbox-2024")
    assert response.status_code == 400
    assert "Do not put your address&#x27;s name in your password." in response.content.decode()
    assert MAILBOX_PASSWORD not in response.content.decode()


def test_it_changes_the_own_password(world):
    client = world.client_for("mailbox")
    before = Mailbox.objects.get(email="bob@a.example").password_changed
    response = change_password(client, MAILBOX_PASSWORD, STRONG)
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:me")
    bob = Mailbox.objects.get(email="bob@a.example")
    assert passwords.verify_password(STRONG, bob.password)
    assert not passwords.verify_password(MAILBOX_PASSWORD, bob.password)
    assert bob.password.startswith("{BLF-CRYPT}$2y$")
    assert bob.password_changed > before

    entry = AuditEntry.objects.get(action="mailbox.password")
    assert (entry.actor, entry.object_id, entry.domain) == ("bob@a.example", bob.pk, "a.example")
    recorded = json.dumps([entry.before, entry.after])
    for secret in (STRONG, MAILBOX_PASSWORD, *HASH_MARKERS):
        assert secret not in recorded
    assert entry.after == {"password_changed": True}

    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "Your password is changed, for mail programs too." in page.content.decode()
    assert sign_in(Client(), "bob@a.example", STRONG).status_code == 302
    assert sign_in(Client(), "bob@a.example", MAILBOX_PASSWORD).status_code == 200


def test_a_longer_minimum_length_changes_the_policy(world, settings):
    client = world.client_for("mailbox")
    fourteen = "Fourteen-ch4rs"
    assert len(fourteen) == 14
    assert services.password_policy_problems(fourteen, "bob@a.example") == []
    settings.MAILADMIN_PASSWORD_MIN_LENGTH = 16
    response = change_password(client, MAILBOX_PASSWORD, fourteen)
    assert response.status_code == 400
    assert "Use at least 16 characters." in response.context["form"].errors["new"]
    assert passwords.verify_password(MAILBOX_PASSWORD, stored_hash())
    hint = client.post(reverse("accounts:password-hint"), {"new": fourteen})
    assert "Use at least 16 characters." in hint.content.decode()
    assert change_password(client, MAILBOX_PASSWORD, fourteen + "!!").status_code == 302
    assert passwords.verify_password(fourteen + "!!", stored_hash())


# ---------------------------------------------------------------- password hint


@pytest.mark.parametrize("new, problem", [
    ("short", "Use at least 12 characters."),
    ("bobbobbobbobbob", "Do not put your address&#x27;s name in your password."),
    ("ä" * 40, "Use at most 72 bytes, and no control characters."),
])
def test_the_hint_names_the_policy_problems(world, new, problem):
    client = world.client_for("mailbox")
    response = client.post(reverse("accounts:password-hint"), {"new": new})
    assert response.status_code == 200
    text = response.content.decode()
    assert problem in text
    assert "too weak" in text
    assert "<html" not in text


def test_the_hint_calls_a_long_mixed_password_strong(world):
    client = world.client_for("mailbox")
    response = client.post(reverse("accounts:password-hint"), {"new": STRONG})
    assert response.status_code == 200
    text = response.content.decode()
    assert "strong" in text
    assert 'class="error"' not in text
    assert response.context["score"] == 4


def test_the_hint_is_empty_before_anything_is_typed(world):
    client = world.client_for("mailbox")
    response = client.post(reverse("accounts:password-hint"), {"new": ""})
    assert response.status_code == 200
    assert response.content.decode().strip() == ""


def test_the_hint_takes_only_posts(world):
    client = world.client_for("mailbox")
    assert client.get(reverse("accounts:password-hint"), {"new": STRONG}).status_code == 405
    assert not AuditEntry.objects.filter(action="mailbox.password").exists()


def test_the_password_form_needs_a_csrf_token(world):
    client = Client(enforce_csrf_checks=True)
    assert sign_in(client, "bob@a.example", MAILBOX_PASSWORD).status_code == 403
    client = Client(enforce_csrf_checks=True)
    client.get(reverse("login"))
    token = client.cookies["csrftoken"].value
    response = client.post(reverse("login"), {"username": "bob@a.example",
                                              "password": MAILBOX_PASSWORD,
                                              "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    response = change_password(client, MAILBOX_PASSWORD, STRONG)
    assert response.status_code == 403
    assert passwords.verify_password(MAILBOX_PASSWORD, stored_hash())


# ---------------------------------------------------------------- imported hashes and admins


def test_an_imported_sha512_crypt_mailbox_signs_in_and_is_rehashed(world):
    password = "imported in 2019 from postfixadmin"
    imported = "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash(password)
    mailbox = services.create_mailbox(actor="t", email="olga@b.example",
                                      password_hash=imported)
    assert stored_hash("olga@b.example") == imported
    client = Client()
    response = sign_in(client, "olga@b.example", password)
    assert response.status_code == 302
    assert client.get(reverse("accounts:me")).status_code == 200
    rehashed = stored_hash("olga@b.example")
    assert rehashed.startswith("{BLF-CRYPT}$2y$")
    assert passwords.verify_password(password, rehashed)
    entry = AuditEntry.objects.get(action="mailbox.rehash", object_id=mailbox.pk)
    assert entry.before == {"scheme": "SHA512-CRYPT"}
    assert entry.after == {"scheme": "BLF-CRYPT"}
    assert entry.actor == "olga@b.example"
    assert sign_in(Client(), "olga@b.example", password).status_code == 302
    assert stored_hash("olga@b.example") == rehashed


def test_a_wrong_password_leaves_an_imported_hash_alone(world):
    imported = "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash("the right one 42")
    services.create_mailbox(actor="t", email="olga@b.example", password_hash=imported)
    assert sign_in(Client(), "olga@b.example", "the wrong one 42").status_code == 200
    assert stored_hash("olga@b.example") == imported
    assert not AuditEntry.objects.filter(action="mailbox.rehash").exists()


def test_an_admin_named_by_an_address_signs_in_to_the_dashboard(world):
    client = Client()
    response = sign_in(client, "alice@a.example", ADMIN_PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert signed_in_user(client) == world.admin_a
    home = client.get(reverse("home"))
    assert home.status_code == 200
    assert next(t.name for t in home.templates) == "home.html"
    assert "Dashboard" in home.content.decode()
    assert home.context["counts"]["domains"] == 1
    assert client.get(reverse("accounts:me")).status_code == 404
    assert not User.objects.filter(username__startswith="mailbox:").exists()


def test_an_admin_password_is_no_mailbox_password(world):
    client = Client()
    response = sign_in(client, "bob@a.example", ADMIN_PASSWORD)
    assert response.status_code == 200
    assert signed_in_user(client) is None
