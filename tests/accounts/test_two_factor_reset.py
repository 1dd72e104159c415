"""Someone else's two-factor sign-in reset (security review): a superadmin for any admin
but themselves, a superadmin or the domain's admin for a mailbox user; devices go, every
session of the account ends, one audit row without a secret."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services as account_services
from accounts import twofactor
from core.actor import Actor
from core.audit_text import ACTIONS, describe
from core.models import AuditEntry
from tests.accounts.test_two_factor import (
    SECRET,
    code,
    enrol,
    password_step,
    signed_in,
    verified,
)

ROOT = Actor.account("root@admin.test")


def mailbox_account(world):
    """bob's session account with an authenticator, as after his own set-up."""
    user = account_services.mailbox_account(world.bob)
    enrol(user)
    return user


def reset_url(user) -> str:
    return reverse("accounts:admin-two-factor-reset", args=[user.pk])


def mailbox_url(email: str) -> str:
    return reverse("accounts:mailbox-two-factor-reset", args=[email])


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- the service -------------------------------------------------------------------


def test_reset_removes_the_devices_ends_the_sessions_and_writes_one_row(world):
    codes = enrol(world.admin_a)
    session = verified(world, "admin_a")  # signed in with a code, as sign-in leaves it
    assert session.get(reverse("home")).status_code == 200
    assert Session.objects.count() == 1
    ended = twofactor.reset_two_factor(actor=ROOT, user=world.admin_a)
    assert ended == 1 and not Session.objects.exists()
    response = session.get(reverse("home"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not TOTPDevice.objects.filter(user=world.admin_a).exists()
    assert not StaticDevice.objects.filter(user=world.admin_a).exists()
    assert not twofactor.has_device(world.admin_a)
    row = AuditEntry.objects.get(action="twofactor.reset")
    assert row.actor == "root@admin.test" and row.object_id == world.admin_a.pk
    assert row.after == {"account": "alice@a.example", "sessions_ended": 1}
    assert SECRET not in str(row.after) and not any(c in str(row.after) for c in codes)
    assert "twofactor.reset" in ACTIONS
    assert describe(row.action, row.before, row.after) == [
        "two-factor sign-in reset for alice@a.example; sessions ended: 1"]


def test_reset_refuses_nothing_to_reset_and_the_own_account(world):
    with pytest.raises(ValidationError, match="no two-factor"):
        twofactor.reset_two_factor(actor=ROOT, user=world.admin_a)
    enrol(world.superadmin)
    with pytest.raises(ValidationError, match="own two-factor page"):
        twofactor.reset_two_factor(actor=ROOT, user=world.superadmin)
    assert twofactor.has_two_factor(world.superadmin)
    assert not AuditEntry.objects.filter(action="twofactor.reset").exists()


def test_a_mailbox_users_reset_is_in_the_domains_log(world):
    user = mailbox_account(world)
    twofactor.reset_two_factor(actor=Actor.account("alice@a.example"), user=user)
    row = AuditEntry.objects.get(action="twofactor.reset")
    assert row.domain == "a.example" and row.domain_ref == world.a.pk
    assert row.after["account"] == "bob@a.example"


def test_a_required_account_is_sent_to_enrol_after_the_reset(world):
    twofactor.set_required_for_domain(actor=ROOT, domain=world.a, required=True)
    enrol(world.admin_a)
    twofactor.reset_two_factor(actor=ROOT, user=world.admin_a)
    client, response = password_step(world.admin_a.username)
    assert response["Location"] == "/login/enrol/" and not signed_in(client)
    assert client.get(reverse("accounts:sign-in-enrol")).status_code == 200
    secret = client.session["mailadmin.two_factor.secret"]
    response = client.post(reverse("accounts:sign-in-enrol"), {"code": code(secret)})
    assert response.status_code == 200 and signed_in(client)
    assert twofactor.has_two_factor(world.admin_a)


# --- the views -------------------------------------------------------------------


def test_a_superadmin_resets_an_admin(world):
    enrol(world.admin_a)
    client = world.client_for("superadmin")
    page = client.get(reverse("accounts:admin-edit", args=[world.admin_a.pk]))
    assert reset_url(world.admin_a).encode() in page.content
    # Without the ticked box nothing changes.
    response = client.post(reset_url(world.admin_a))
    assert response.status_code == 302 and twofactor.has_two_factor(world.admin_a)
    assert "nothing was changed" in " ".join(texts(response))
    response = client.post(reset_url(world.admin_a), {"confirm": "on"})
    assert response["Location"] == reverse("accounts:admin-edit", args=[world.admin_a.pk])
    assert not twofactor.has_device(world.admin_a)
    assert "sign in with the password alone" in " ".join(texts(response))
    page = client.get(reverse("accounts:admin-edit", args=[world.admin_a.pk]))
    assert reset_url(world.admin_a).encode() not in page.content


def test_a_superadmin_resets_another_superadmin_on_the_list_but_not_themselves(world):
    other = account_services.create_admin(actor=ROOT, username="zed@admin.test",
                                          password="a long admin password 7", superadmin=True)
    enrol(other)
    enrol(world.superadmin)
    client = verified(world, "superadmin")
    page = client.get(reverse("accounts:admin-list"))
    assert reset_url(other).encode() in page.content
    assert reset_url(world.superadmin).encode() not in page.content
    response = client.post(reset_url(world.superadmin), {"confirm": "on"})
    assert response.status_code == 302 and twofactor.has_two_factor(world.superadmin)
    assert "own two-factor page" in " ".join(texts(response))
    response = client.post(reset_url(other), {"confirm": "on"})
    assert response["Location"] == reverse("accounts:admin-list")
    assert not twofactor.has_device(other)


@pytest.mark.parametrize("persona", ["admin_a", "admin_b", "mailbox"])
def test_only_a_superadmin_resets_an_admin(world, persona):
    enrol(world.superadmin)
    enrol(world.admin_b)
    client = verified(world, persona)
    for target in (world.superadmin, world.admin_b):
        assert client.post(reset_url(target), {"confirm": "on"}).status_code == 404
    assert twofactor.has_two_factor(world.superadmin) and twofactor.has_two_factor(world.admin_b)


@pytest.mark.parametrize("persona", ["superadmin", "admin_a"])
def test_the_domains_admin_or_a_superadmin_resets_a_mailbox_user(world, persona):
    user = mailbox_account(world)
    client = world.client_for(persona)
    page = client.get(reverse("domains:mailbox-edit", args=[world.bob.email]))
    assert mailbox_url(world.bob.email).encode() in page.content
    assert b"style=" not in page.content
    response = client.post(mailbox_url(world.bob.email), {"confirm": "on"})
    assert response["Location"] == reverse("domains:mailbox-edit", args=[world.bob.email])
    assert not twofactor.has_device(user)
    page = client.get(reverse("domains:mailbox-edit", args=[world.bob.email]))
    assert mailbox_url(world.bob.email).encode() not in page.content


def test_another_domains_admin_gets_404_for_a_mailbox_user(world):
    user = mailbox_account(world)
    client = world.client_for("admin_b")
    assert client.post(mailbox_url(world.bob.email), {"confirm": "on"}).status_code == 404
    assert client.get(mailbox_url(world.bob.email)).status_code == 404
    assert twofactor.has_two_factor(user)


def test_get_changes_nothing(world):
    enrol(world.admin_a)
    user = mailbox_account(world)
    superadmin = world.client_for("superadmin")
    assert superadmin.get(reset_url(world.admin_a) + "?confirm=on").status_code == 405
    assert superadmin.get(mailbox_url(world.bob.email) + "?confirm=on").status_code == 405
    assert twofactor.has_two_factor(world.admin_a) and twofactor.has_two_factor(user)


def test_a_mailbox_never_signed_in_has_nothing_to_reset(world):
    client = world.client_for("admin_a")
    response = client.post(mailbox_url(world.bob.email), {"confirm": "on"})
    assert response.status_code == 302
    assert "no two-factor" in " ".join(texts(response))


def test_the_reset_needs_the_csrf_token(world):
    enrol(world.admin_a)
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(world.superadmin)
    assert client.post(reset_url(world.admin_a), {"confirm": "on"}).status_code == 403
    assert twofactor.has_two_factor(world.admin_a)


@pytest.mark.parametrize("evil", ["-1", "0", "99999999999999999999999", "1e3", "%00", "abc",
                                  "1%2F2"])
def test_hostile_admin_ids_are_404(world, evil):
    client = world.client_for("superadmin")
    response = client.post(f"/admins/{evil}/two-factor/reset/", {"confirm": "on"})
    assert response.status_code == 404


@pytest.mark.parametrize("evil", ["nobody@a.example", "BOB@A.EXAMPLE%00", "x" * 400,
                                  "carol@b.example'--", "%3Csvg%3E@a.example", "@a.example"])
def test_hostile_mailbox_addresses_are_404(world, evil):
    mailbox_account(world)
    client = world.client_for("admin_a")
    response = client.post(f"/mailboxes/{evil}/two-factor/reset/", {"confirm": "on"})
    assert response.status_code == 404


@pytest.mark.parametrize("confirm", ["", "off", "on\x00", "ON", "x" * 10_000])
def test_a_hostile_confirmation_changes_nothing(world, confirm):
    user = mailbox_account(world)
    client = world.client_for("admin_a")
    response = client.post(mailbox_url(world.bob.email), {"confirm": confirm})
    assert response.status_code == 302 and twofactor.has_two_factor(user)


def test_the_command_line_resets_an_admins_two_factor(world):
    # The way back for a sole superadmin who lost both the phone and the codes.
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    enrol(world.admin_a)
    out = StringIO()
    call_command("admin", "reset-two-factor", world.admin_a.username, stdout=out)
    assert "reset the two-factor sign-in of" in out.getvalue()
    assert not TOTPDevice.objects.filter(user=world.admin_a).exists()
    assert AuditEntry.objects.filter(action="twofactor.reset").count() == 1
    with pytest.raises(CommandError, match="has no two-factor sign-in to reset"):
        call_command("admin", "reset-two-factor", world.admin_a.username, stdout=StringIO())
