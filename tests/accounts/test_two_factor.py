"""Two-factor sign-in (issue 13 §4): TOTP and recovery codes, the second sign-in step,
who must use it; a password alone reaches no page, codes are good once, guessing is
throttled and counted toward the lockout and logged for fail2ban."""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import signin, twofactor
from core.actor import Actor
from core.models import AuditEntry
from tests.conftest import ADMIN_PASSWORD, MAILBOX_PASSWORD
from tests.mailadmin.test_urls import EXPECTED

SECRET = "3132333435363738393031323334353637383930"  # RFC 6238's test key, hex
LINE = re.compile(r'^mailadmin: authentication failure for "((?:[^"\\]|\\.)*)" from (\S+)$')
# The pages a half-signed-in session may see: the sign-in form and its own second step
# (a security key may be added at the set-up step).
SIGN_IN_PAGES = {"login", "accounts:sign-in-code", "accounts:sign-in-enrol",
                 "accounts:security-key-add"}


@pytest.fixture(autouse=True)
def lockout_defaults(settings):
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    settings.MAILADMIN_TRUSTED_PROXIES = []


def code(secret: str = SECRET, steps: int = 0) -> str:
    """The code an authenticator app shows now (or `steps` time steps later)."""
    totp = TOTP(bytes.fromhex(secret), step=30, t0=0, digits=6, drift=steps)
    totp.time = time.time()
    return f"{totp.token():06d}"


def enrol(user, secret: str = SECRET) -> list[str]:
    return twofactor.enable(actor=Actor.account("t"), user=user, secret=secret, code=code(secret))


def password_step(username: str, password: str = ADMIN_PASSWORD, ip: str = "192.0.2.50"
                  ) -> tuple[Client, object]:
    client = Client(REMOTE_ADDR=ip)
    response = client.post(reverse("login"), {"username": username, "password": password})
    return client, response


def second_step(client: Client, typed: str):
    return client.post(reverse("accounts:sign-in-code"), {"code": typed})


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def verified(world, persona: str) -> Client:
    """A session of `persona` that passed the second step (as sign-in leaves it)."""
    client = world.client_for(persona)
    session = client.session
    session[signin.VERIFIED] = True
    session.save()
    return client


def auth_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "mailadmin.auth"]


# --- services ----------------------------------------------------------------


def test_enrolment_needs_a_matching_code_and_keeps_no_secret_in_the_audit_log(world):
    with pytest.raises(Exception, match="does not match"):
        twofactor.enable(actor=Actor.account("t"), user=world.admin_a, secret=SECRET,
                         code="000000" if code() != "000000" else "111111")
    assert not twofactor.has_two_factor(world.admin_a)
    codes = enrol(world.admin_a)
    assert len(codes) == len(set(codes)) == 10
    assert twofactor.has_two_factor(world.admin_a)
    assert twofactor.recovery_codes_left(world.admin_a) == 10
    row = AuditEntry.objects.get(action="twofactor.enable")
    assert SECRET not in str(row.after) and not any(c in str(row.after) for c in codes)
    with pytest.raises(Exception, match="already set up"):
        enrol(world.admin_a)


def test_the_enrolment_code_cannot_sign_in(world):
    enrol(world.admin_a)
    client, _ = password_step(world.admin_a.username)
    assert second_step(client, code()).status_code == 400
    assert not signed_in(client)


def test_policy_for_all_admins_and_per_domain(world):
    assert not twofactor.required_for(world.admin_a)
    twofactor.set_required_for_domain(actor=Actor.account("root"), domain=world.a, required=True)
    assert twofactor.required_for(world.admin_a)
    assert not twofactor.required_for(world.admin_b)
    assert not twofactor.required_for(world.superadmin)
    twofactor.set_required_for_all_admins(actor=Actor.account("root"), required=True)
    assert twofactor.required_for(world.admin_b) and twofactor.required_for(world.superadmin)
    client = world.client_for("mailbox")
    mailbox_account = client.get(reverse("accounts:me")).wsgi_request.user
    assert not twofactor.required_for(mailbox_account)  # optional for mailbox users
    actions = list(AuditEntry.objects.filter(action__startswith="twofactor.").order_by("id")
                   .values_list("action", "domain"))
    assert actions == [("twofactor.domain", "a.example"), ("twofactor.policy", "")]
    # Saving the same again writes nothing.
    twofactor.set_required_for_all_admins(actor=Actor.account("root"), required=True)
    assert AuditEntry.objects.filter(action="twofactor.policy").count() == 1


# --- the second step -----------------------------------------------------------


def test_password_then_code_signs_in_and_a_replayed_code_is_refused(world):
    enrol(world.admin_a)
    client, response = password_step(world.admin_a.username)
    assert response.status_code == 302 and response["Location"] == "/login/code/"
    assert not signed_in(client)
    typed = code(steps=1)  # the next step's code: the one at enrolment is spent
    response = second_step(client, typed)
    assert response.status_code == 302 and signed_in(client)
    assert client.get(reverse("home")).status_code == 200

    replay, _ = password_step(world.admin_a.username)
    response = second_step(replay, typed)
    assert response.status_code == 400 and not signed_in(replay)
    assert b"wrong, or was used already" in response.content


def test_a_recovery_code_works_once(world):
    codes = enrol(world.admin_a)
    client, _ = password_step(world.admin_a.username)
    assert second_step(client, codes[0].upper()[:4] + "-" + codes[0][4:]).status_code == 302
    assert signed_in(client)
    assert twofactor.recovery_codes_left(world.admin_a) == 9
    again, _ = password_step(world.admin_a.username)
    assert second_step(again, codes[0]).status_code == 400
    assert not signed_in(again)


def test_the_password_alone_reaches_no_page(world):
    enrol(world.admin_a)
    client, _ = password_step(world.admin_a.username)
    _walk_finds_nothing(client, second_step_name="accounts:sign-in-code")


def _walk_finds_nothing(client: Client, *, second_step_name: str) -> None:
    leaks = []
    for name, args in EXPECTED:
        url = reverse(name, args=args)
        response = client.get(url)
        if name in SIGN_IN_PAGES:
            continue
        status = response.status_code
        location = response.get("Location", "")
        if status in (403, 404, 405) or (status == 302 and location.startswith("/login/")):
            continue
        leaks.append(f"{url}: {status} {location}")
    assert leaks == []
    assert client.get(reverse(second_step_name)).status_code == 200
    assert not signed_in(client)


def test_wrong_codes_are_logged_for_fail2ban_and_lock_the_account_out(world, caplog):
    enrol(world.admin_a)
    caplog.set_level(logging.INFO)
    client, _ = password_step(world.admin_a.username, ip="192.0.2.60")
    for _ in range(4):
        # The throttle would refuse the next guess for seconds: step past it.
        TOTPDevice.objects.filter(user=world.admin_a).update(throttling_failure_timestamp=None)
        assert second_step(client, "12345x").status_code == 400
    lines = auth_lines(caplog)
    assert lines == ['mailadmin: authentication failure for "alice@a.example" from 192.0.2.60'] * 4
    assert all(LINE.match(line) for line in lines)
    TOTPDevice.objects.filter(user=world.admin_a).update(throttling_failure_timestamp=None)
    assert second_step(client, "000000" if code(steps=1) != "000000" else "111111"
                       ).status_code == 429
    # Locked: the password alone is refused now too, and the right code after it.
    again, response = password_step(world.admin_a.username, ip="192.0.2.61")
    assert response.status_code == 429 and not signed_in(again)


def test_guessing_is_throttled_even_for_the_right_code(world):
    enrol(world.admin_a)
    client, _ = password_step(world.admin_a.username)
    assert second_step(client, "999999" if code(steps=1) != "999999" else "888888"
                       ).status_code == 400
    response = second_step(client, code(steps=1))  # right, but within the throttle's second
    assert response.status_code == 400 and b"Too many wrong codes" in response.content
    assert not signed_in(client)
    device = TOTPDevice.objects.get(user=world.admin_a)
    assert device.throttling_failure_count == 1  # a throttled try is refused unchecked
    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=timezone.now() - timedelta(seconds=10))
    assert second_step(client, code(steps=1)).status_code == 302 and signed_in(client)


def test_the_second_step_expires(world, settings):
    enrol(world.admin_a)
    client, _ = password_step(world.admin_a.username)
    session = client.session
    session["mailadmin.sign_in.pending"]["at"] -= settings.MAILADMIN_TWO_FACTOR_STEP_SECONDS + 1
    session.save()
    response = second_step(client, code(steps=1))
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert not signed_in(client)


@pytest.mark.parametrize("evil", ["x" * 65, "1" * 10_000, "12345\x00", "١٢٣٤٥٦", " ", "<svg>"])
def test_hostile_codes_are_form_errors(world, evil):
    enrol(world.admin_a)
    client, _ = password_step(world.admin_a.username)
    response = second_step(client, evil)
    assert response.status_code == 400 and not signed_in(client)
    assert b"<svg>" not in response.content


def test_a_mailbox_user_may_turn_it_on_and_then_needs_the_code(world):
    client = world.client_for("mailbox")
    page = client.get(reverse("accounts:two-factor-enrol"))
    assert page.status_code == 200 and b"<svg" in page.content and b"style=" not in page.content
    secret = client.session["mailadmin.two_factor.secret"]
    response = client.post(reverse("accounts:two-factor-enrol"),
                           {"password": MAILBOX_PASSWORD, "code": code(secret)})
    assert response.status_code == 200 and b"recovery-codes" in response.content
    client.post(reverse("logout"))
    fresh, response = password_step(world.bob.email, MAILBOX_PASSWORD)
    assert response["Location"] == "/login/code/" and not signed_in(fresh)
    assert second_step(fresh, code(secret, steps=1)).status_code == 302 and signed_in(fresh)


# --- an account that must --------------------------------------------------------


def test_a_required_admin_without_a_device_is_sent_to_enrol_and_reaches_nothing_else(world):
    twofactor.set_required_for_domain(actor=Actor.account("root"), domain=world.a, required=True)
    client, response = password_step(world.admin_a.username)
    assert response["Location"] == "/login/enrol/"
    _walk_finds_nothing(client, second_step_name="accounts:sign-in-enrol")
    assert client.get(reverse("accounts:sign-in-code"))["Location"] == "/login/enrol/"
    secret = client.session["mailadmin.two_factor.secret"]
    assert client.post(reverse("accounts:sign-in-enrol"), {"code": "000000x"}).status_code == 400
    response = client.post(reverse("accounts:sign-in-enrol"), {"code": code(secret)})
    assert response.status_code == 200 and signed_in(client)
    assert len(re.findall(rb"<li><code>[a-z2-7]{8}</code></li>", response.content)) == 10
    # admin_b's domain does not require it: the password signs in.
    other, response = password_step(world.admin_b.username)
    assert signed_in(other)


# --- own page: disable and new recovery codes ------------------------------------


def test_disable_needs_the_password_and_a_code(world):
    enrol(world.admin_a)
    client = verified(world, "admin_a")
    url = reverse("accounts:two-factor-disable")
    assert client.post(url, {"password": "wrong password 1", "code": code(steps=1)}
                       ).status_code == 400
    assert client.post(url, {"password": ADMIN_PASSWORD, "code": "12345x"}).status_code == 400
    assert twofactor.has_two_factor(world.admin_a)
    TOTPDevice.objects.filter(user=world.admin_a).update(throttling_failure_timestamp=None)
    response = client.post(url, {"password": ADMIN_PASSWORD, "code": code(steps=1)})
    assert response.status_code == 302 and not twofactor.has_two_factor(world.admin_a)
    assert not StaticToken.objects.filter(device__user=world.admin_a).exists()
    assert AuditEntry.objects.filter(action="twofactor.disable").count() == 1


def test_a_required_account_cannot_turn_it_off(world):
    codes = enrol(world.admin_a)
    twofactor.set_required_for_all_admins(actor=Actor.account("root"), required=True)
    client = verified(world, "admin_a")
    response = client.post(reverse("accounts:two-factor-disable"),
                           {"password": ADMIN_PASSWORD, "code": codes[0]})
    assert response.status_code == 400 and twofactor.has_two_factor(world.admin_a)


def test_new_recovery_codes_replace_the_old(world):
    old = enrol(world.admin_a)
    client = verified(world, "admin_a")
    response = client.post(reverse("accounts:two-factor-recovery"), {"code": old[0]})
    assert response.status_code == 200
    new = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", response.content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    signing, _ = password_step(world.admin_a.username)
    assert second_step(signing, old[1]).status_code == 400


# --- the policy page -------------------------------------------------------------


def test_the_policy_page(world):
    enrol(world.superadmin)  # it applies to them too once all admins must
    client = verified(world, "superadmin")
    url = reverse("accounts:two-factor-policy")
    assert client.post(url, {"change": "all_admins", "required": "on"}).status_code == 302
    assert twofactor.required_for(world.admin_b)
    assert client.post(url, {"change": "all_admins"}).status_code == 302
    assert not twofactor.required_for(world.admin_b)
    assert client.post(url, {"change": "add", "add": "A.Example."}).status_code == 302
    assert twofactor.required_for(world.admin_a)
    page = client.get(url)
    assert b"a.example" in page.content
    for evil in ("nope.example", "x" * 300, "a\x00.example", "<b>.example"):
        assert client.post(url, {"change": "add", "add": evil}).status_code == 400
    assert client.post(url, {"change": "remove", "domain": "9" * 40}).status_code == 302
    assert client.post(url, {"change": "nonsense"}).status_code == 400
    assert client.post(url, {"change": "remove", "domain": str(world.a.pk)}).status_code == 302
    assert not twofactor.required_for(world.admin_a)
    for persona in ("admin_a", "mailbox"):
        assert world.client_for(persona).post(
            url, {"change": "all_admins", "required": "on"}).status_code == 404


# --- sessions that began before the second step applied to them ------------------


def test_a_session_from_before_enrolment_ends_when_the_account_turns_it_on(world):
    stolen = world.client_for("admin_a")  # the password alone, while it was enough
    assert stolen.get(reverse("home")).status_code == 200
    enrol(world.admin_a)  # in another session
    response = stolen.get(reverse("domains:domain-list"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not signed_in(stolen)


def test_a_session_from_before_the_policy_reaches_only_the_set_up(world):
    client = world.client_for("admin_a")
    twofactor.set_required_for_domain(actor=Actor.account("root"), domain=world.a, required=True)
    response = client.get(reverse("domains:domain-list"))
    assert response.status_code == 302 and response["Location"] == "/two-factor/enrol/"
    assert client.get(reverse("accounts:admin-domain-suggest") + "?q=a")["Location"] == \
        "/two-factor/enrol/"
    page = client.get(reverse("accounts:two-factor-enrol"))
    assert page.status_code == 200
    secret = client.session["mailadmin.two_factor.secret"]
    assert client.post(reverse("accounts:two-factor-enrol"),
                       {"password": ADMIN_PASSWORD, "code": code(secret)}).status_code == 200
    assert client.get(reverse("domains:domain-list")).status_code == 200


def test_turning_it_on_in_a_session_needs_the_password(world, caplog):
    """Whoever holds only a session (a cookie) cannot put their own authenticator on
    the account, which would shut its owner out of the panel."""
    caplog.set_level(logging.INFO)
    client = world.client_for("admin_a")
    url = reverse("accounts:two-factor-enrol")
    client.get(url)
    secret = client.session["mailadmin.two_factor.secret"]
    assert client.post(url, {"code": code(secret)}).status_code == 400
    response = client.post(url, {"password": "not the password", "code": code(secret)})
    assert response.status_code == 400 and b"not your password" in response.content
    assert not twofactor.has_two_factor(world.admin_a)
    assert auth_lines(caplog) == [
        f'mailadmin: authentication failure for "{world.admin_a.username}" from 127.0.0.1']
    response = client.post(url, {"password": ADMIN_PASSWORD, "code": code(secret)})
    assert response.status_code == 200 and twofactor.has_two_factor(world.admin_a)


@pytest.mark.parametrize("evil", ["", "x" * 5000, "pw\x00", "<svg>"])
def test_hostile_passwords_on_the_set_up_are_form_errors(world, evil):
    client = world.client_for("mailbox")
    url = reverse("accounts:two-factor-enrol")
    client.get(url)
    response = client.post(url, {"password": evil, "code": "123456"})
    assert response.status_code == 400 and b"<svg>" not in response.content.split(b"</figure>")[-1]


def test_the_password_asked_is_this_accounts_not_a_mailbox_of_the_same_name(world):
    """An admin named like a mailbox: sign-in's backends would accept the mailbox's
    password for that name too, but it is not the admin's password."""
    from domains import services as domain_services

    mailbox_password = "the mailbox's own passphrase 7"
    domain_services.create_mailbox(actor="t", email=world.admin_a.username,
                                   password=mailbox_password)
    client = world.client_for("admin_a")
    url = reverse("accounts:two-factor-enrol")
    client.get(url)
    secret = client.session["mailadmin.two_factor.secret"]
    response = client.post(url, {"password": mailbox_password, "code": code(secret)})
    assert response.status_code == 400 and not twofactor.has_two_factor(world.admin_a)

    enrol(world.admin_a)
    client = verified(world, "admin_a")
    response = client.post(reverse("accounts:two-factor-disable"),
                           {"password": mailbox_password, "code": code(steps=1)})
    assert response.status_code == 400 and twofactor.has_two_factor(world.admin_a)
