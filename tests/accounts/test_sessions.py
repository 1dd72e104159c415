"""A password change, a disable or a delete ends the other sessions of that mailbox."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from domains import services
from tests.conftest import MAILBOX_PASSWORD

NEW = "a new mailbox passphrase 9"


@pytest.fixture(autouse=True)
def fast_admin_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def bob_session(world: Any) -> Client:
    client = world.client_for("mailbox")
    assert client.get(reverse("accounts:me")).status_code == 200
    return client


def ended(client: Client) -> bool:
    """The session is gone: the next page asks for a sign-in."""
    response = client.get(reverse("accounts:me"))
    return (response.status_code == 302
            and response["Location"].startswith(reverse("login"))
            and "_auth_user_id" not in client.session)


def test_an_admin_reset_on_the_edit_page_ends_the_mailbox_sessions(world):
    first, second = bob_session(world), bob_session(world)
    response = world.client_for("admin_a").post(
        reverse("domains:mailbox-edit", args=["bob@a.example"]),
        {"name": "", "quota": "0", "active": "on", "password": NEW})
    assert response.status_code == 302
    assert ended(first) and ended(second)
    assert world.client_for("superadmin").get(reverse("home")).status_code == 200


def test_an_edit_without_a_new_password_keeps_the_sessions(world):
    first = bob_session(world)
    services.update_mailbox(actor="t", mailbox=world.bob, name="Bob", quota="0", active=True)
    assert first.get(reverse("accounts:me")).status_code == 200


def test_passwd_on_the_command_line_ends_the_mailbox_sessions(world, cli):
    first = bob_session(world)
    cli("mailbox", "passwd", "bob@a.example", "--password-stdin", stdin=NEW + "\n")
    assert ended(first)


def test_changing_the_own_password_ends_the_other_sessions_only(world):
    mine, other = bob_session(world), bob_session(world)
    response = mine.post(reverse("accounts:password"), {
        "current": MAILBOX_PASSWORD, "new": NEW, "new_again": NEW})
    assert response.status_code == 302
    assert mine.get(reverse("accounts:me")).status_code == 200
    assert ended(other)


@pytest.mark.parametrize("how", ["mailbox disable", "edit page", "domain disable"])
def test_a_disable_ends_the_sessions_for_good(world, how):
    first = bob_session(world)
    if how == "mailbox disable":
        services.set_mailbox_active(actor="t", mailbox=world.bob, active=False)
        services.set_mailbox_active(actor="t", mailbox=world.bob, active=True)
    elif how == "edit page":
        services.update_mailbox(actor="t", mailbox=world.bob, active=False)
        services.update_mailbox(actor="t", mailbox=world.bob, active=True)
    else:
        services.set_domain_active(actor="t", domain=world.a, active=False)
        services.set_domain_active(actor="t", domain=world.a, active=True)
    # Enabled again, the session opened before the disable stays ended.
    assert ended(first)
    assert bob_session(world)  # a new sign-in works


@pytest.mark.parametrize("how", ["mailbox", "domain"])
def test_a_delete_ends_the_sessions(world, how):
    first = bob_session(world)
    if how == "mailbox":
        services.delete_mailbox(actor="t", mailbox=world.bob)
    else:
        services.delete_domain(actor="t", domain=world.a, force=True)
    assert ended(first)


def test_one_mailbox_change_leaves_other_mailboxes_signed_in(world):
    bob = bob_session(world)
    carol = Client()
    assert carol.post(reverse("login"), {"username": "carol@b.example",
                                         "password": MAILBOX_PASSWORD}).status_code == 302
    services.set_mailbox_password(actor="t", mailbox=world.carol, password=NEW)
    assert bob.get(reverse("accounts:me")).status_code == 200


ADMIN_NEW = "a new admin passphrase 9"


def admin_sessions(world: Any) -> tuple[Client, Client]:
    """Two browsers signed in as the same domain admin."""
    from tests.conftest import ADMIN_PASSWORD

    sessions = (Client(), Client())
    for client in sessions:
        assert client.post(reverse("login"), {"username": "alice@a.example",
                                              "password": ADMIN_PASSWORD}).status_code == 302
        assert client.get(reverse("domains:domain-list")).status_code == 200
    return sessions


def admin_ended(client: Client) -> bool:
    response = client.get(reverse("domains:domain-list"))
    return (response.status_code == 302
            and response["Location"].startswith(reverse("login"))
            and "_auth_user_id" not in client.session)


@pytest.mark.parametrize("how", ["panel", "command line"])
def test_a_superadmin_reset_ends_the_admins_sessions(world, cli, how):
    first, second = admin_sessions(world)
    if how == "panel":
        response = world.client_for("superadmin").post(
            reverse("accounts:admin-password", args=[world.admin_a.pk]),
            {"password": ADMIN_NEW, "password_again": ADMIN_NEW})
        assert response.status_code == 302
    else:
        cli("admin", "passwd", "alice@a.example", "--password-stdin", stdin=ADMIN_NEW + "\n")
    assert admin_ended(first) and admin_ended(second)
    assert world.client_for("superadmin").get(reverse("home")).status_code == 200


@pytest.mark.parametrize("how", ["panel", "command line"])
def test_disabling_an_admin_ends_the_sessions_for_good(world, cli, how):
    first, second = admin_sessions(world)
    if how == "panel":
        url = reverse("accounts:admin-active", args=[world.admin_a.pk])
        superadmin = world.client_for("superadmin")
        assert superadmin.post(url, {"active": ""}).status_code == 302
        assert admin_ended(first)
        assert superadmin.post(url, {"active": "on"}).status_code == 302
    else:
        cli("admin", "disable", "alice@a.example")
        assert admin_ended(first)
        cli("admin", "enable", "alice@a.example")
    # Enabled again, the sessions opened before the disable stay ended.
    assert admin_ended(first) and admin_ended(second)
    assert admin_sessions(world)  # a new sign-in works


@pytest.mark.parametrize("how", ["panel", "command line"])
def test_deleting_an_admin_ends_the_sessions(world, cli, how):
    first, second = admin_sessions(world)
    if how == "panel":
        assert world.client_for("superadmin").post(
            reverse("accounts:admin-delete", args=[world.admin_a.pk])).status_code == 302
    else:
        cli("admin", "delete", "alice@a.example")
    assert admin_ended(first) and admin_ended(second)


def test_an_admin_change_leaves_other_admins_signed_in(world):
    bert = world.client_for("admin_b")
    superadmin = world.client_for("superadmin")
    assert superadmin.post(reverse("accounts:admin-password", args=[world.admin_a.pk]),
                           {"password": ADMIN_NEW, "password_again": ADMIN_NEW}).status_code == 302
    assert bert.get(reverse("domains:domain-list")).status_code == 200
    assert superadmin.get(reverse("accounts:admin-list")).status_code == 200


def test_a_superadmin_resetting_their_own_password_keeps_this_session_only(world):
    mine, other = world.client_for("superadmin"), world.client_for("superadmin")
    response = mine.post(reverse("accounts:admin-password", args=[world.superadmin.pk]),
                         {"password": ADMIN_NEW, "password_again": ADMIN_NEW})
    assert response.status_code == 302
    assert mine.get(reverse("accounts:admin-list")).status_code == 200
    assert admin_ended(other)
