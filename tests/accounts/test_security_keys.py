"""Security keys (WebAuthn) as the second sign-in step (issue 13 §4): added after the
password, named, removed with the password; at sign-in only after a right password;
a refused answer counts toward the lockout; keys count for the policy.

SoftKey below is a software authenticator (P-256, "none" attestation) built from the
WebAuthn format, so py_webauthn checks real signatures here; the Chromium test
(tests/integration/test_browser_security_keys.py) uses the browser's own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from datetime import timedelta
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django_otp_webauthn.models import WebAuthnCredential

from accounts import securitykeys, signin, twofactor
from core.actor import Actor
from core.models import AuditEntry
from tests.accounts.test_two_factor import (
    SECRET,
    _walk_finds_nothing,
    code,
    enrol,
    password_step,
    signed_in,
    verified,
)
from tests.conftest import ADMIN_PASSWORD

ORIGIN = "http://testserver"


@pytest.fixture(autouse=True)
def lockout_defaults(settings):
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    settings.MAILADMIN_TRUSTED_PROXIES = []


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SoftKey:
    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.count = 0

    def _client_data(self, kind: str, options: dict[str, Any], origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": options["challenge"], "origin": origin,
                           "crossOrigin": False}).encode()

    def create(self, options: dict[str, Any], origin: str = ORIGIN) -> dict[str, Any]:
        numbers = self.private.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})
        auth_data = (hashlib.sha256(options["rp"]["id"].encode()).digest() + bytes([0x41])
                     + struct.pack(">I", 0) + bytes(16)
                     + struct.pack(">H", len(self.credential_id)) + self.credential_id + cose)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": b64(self.credential_id), "rawId": b64(self.credential_id),
                "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64(self._client_data("webauthn.create",
                                                                     options, origin)),
                             "attestationObject": b64(attestation), "transports": ["usb"]}}

    def get(self, options: dict[str, Any], origin: str = ORIGIN) -> dict[str, Any]:
        self.count += 1
        auth_data = (hashlib.sha256(options["rpId"].encode()).digest() + bytes([0x01])
                     + struct.pack(">I", self.count))
        client_data = self._client_data("webauthn.get", options, origin)
        signature = self.private.sign(auth_data + hashlib.sha256(client_data).digest(),
                                      ec.ECDSA(hashes.SHA256()))
        return {"id": b64(self.credential_id), "rawId": b64(self.credential_id),
                "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64(client_data),
                             "authenticatorData": b64(auth_data),
                             "signature": b64(signature), "userHandle": None}}


def post_json(client: Client, name: str, data: Any = None):
    return client.post(reverse(name), json.dumps(data) if data is not None else "",
                       content_type="application/json")


def add_key(client: Client, key: SoftKey, *, name: str = "blue key",
            password: str | None = ADMIN_PASSWORD):
    form = {"name": name} if password is None else {"name": name, "password": password}
    page = client.post(reverse("accounts:security-key-add"), form)
    assert page.status_code == 200 and b'id="otp_webauthn_config"' in page.content
    options = post_json(client, "accounts:security-key-begin").json()
    return post_json(client, "accounts:security-key-complete", key.create(options))


def key_step(client: Client, key: SoftKey):
    options = post_json(client, "accounts:sign-in-key-begin")
    assert options.status_code == 200, options.content
    return post_json(client, "accounts:sign-in-key-complete", key.get(options.json()))


def test_adding_a_key_needs_the_password_and_a_name_and_makes_recovery_codes(world):
    client = world.client_for("admin_a")
    # Not named yet: the browser's calls are refused.
    assert post_json(client, "accounts:security-key-begin").status_code == 403
    assert post_json(client, "accounts:security-key-complete", {}).status_code == 403
    wrong = client.post(reverse("accounts:security-key-add"),
                        {"name": "blue key", "password": "not it at all"})
    assert wrong.status_code == 400 and b"not your password" in wrong.content
    key = SoftKey()
    response = add_key(client, key)
    assert response.status_code == 200, response.content
    assert response.json()["redirect_url"] == reverse("accounts:security-key-added")
    assert twofactor.has_two_factor(world.admin_a) and twofactor.has_security_key(world.admin_a)
    assert client.session[signin.VERIFIED] is True
    codes = client.get(reverse("accounts:security-key-added"))
    assert codes.content.count(b"<li><code>") == 10
    # Shown once.
    assert client.get(reverse("accounts:security-key-added"))["Location"] == "/two-factor/"
    row = AuditEntry.objects.get(action="twofactor.key_add")
    assert row.after == {"key": "blue key", "recovery_codes": 10}
    page = client.get(reverse("accounts:two-factor"))
    assert b"blue key" in page.content and b"a security key" in page.content
    # The answer cannot be sent twice: its challenge is gone.
    options_gone = post_json(client, "accounts:security-key-complete", key.create(
        {"challenge": "x", "rp": {"id": "testserver"}}))
    assert options_gone.status_code == 403
    assert WebAuthnCredential.objects.filter(user=world.admin_a).count() == 1


def test_an_answer_for_another_challenge_or_origin_adds_nothing(world):
    client = world.client_for("admin_a")
    client.post(reverse("accounts:security-key-add"),
                {"name": "k", "password": ADMIN_PASSWORD})
    options = post_json(client, "accounts:security-key-begin").json()
    answer = SoftKey().create(options, origin="https://evil.example")
    response = post_json(client, "accounts:security-key-complete", answer)
    assert response.status_code == 400 and not twofactor.has_two_factor(world.admin_a)
    for hostile in ("", "[]", "{not json", json.dumps({"id": 1}), "x" * 70000):
        post_json(client, "accounts:security-key-begin")
        response = client.post(reverse("accounts:security-key-complete"), hostile,
                               content_type="application/json")
        assert response.status_code == 400, hostile[:20]
    assert not AuditEntry.objects.filter(action="twofactor.key_add").exists()


def test_sign_in_with_password_then_key(world, caplog):
    key = SoftKey()
    assert add_key(world.client_for("admin_a"), key).status_code == 200
    client, response = password_step(world.admin_a.username)
    assert response["Location"] == reverse("accounts:sign-in-code")
    page = client.get(reverse("accounts:sign-in-code"))
    assert b"Use a security key" in page.content and b'id="otp_webauthn_config"' in page.content
    _walk_finds_nothing(client, second_step_name="accounts:sign-in-code")
    options = post_json(client, "accounts:sign-in-key-begin").json()
    assert options["allowCredentials"][0]["id"] == b64(key.credential_id)
    done = post_json(client, "accounts:sign-in-key-complete", key.get(options))
    assert done.status_code == 200 and done.json()["redirect_url"] == "/"
    assert signed_in(client) and client.session[signin.VERIFIED] is True
    assert client.get(reverse("accounts:two-factor")).status_code == 200
    # The same answer again, in a new sign-in: its challenge was another one.
    again, _ = password_step(world.admin_a.username)
    post_json(again, "accounts:sign-in-key-begin")
    assert post_json(again, "accounts:sign-in-key-complete",
                     key.get(options)).status_code == 403
    assert not signed_in(again)


def test_the_key_steps_refuse_every_other_state(world):
    key = SoftKey()
    assert add_key(world.client_for("admin_a"), key).status_code == 200
    anonymous = Client()
    for name in ("accounts:sign-in-key-begin", "accounts:sign-in-key-complete",
                 "accounts:security-key-begin", "accounts:security-key-complete"):
        assert post_json(anonymous, name, {}).status_code == 403, name
    assert anonymous.get(reverse("accounts:security-key-add"))["Location"] == "/login/"
    # Signed in: no sign-in answers. An account without a key: none either.
    signed = verified(world, "admin_a")
    assert post_json(signed, "accounts:sign-in-key-begin").status_code == 403
    enrol(world.admin_b)
    other, _ = password_step(world.admin_b.username)
    assert post_json(other, "accounts:sign-in-key-begin").status_code == 403
    # At the code step no key may be added (the session is not signed in).
    client, _ = password_step(world.admin_a.username)
    assert client.get(reverse("accounts:security-key-add"))["Location"] == "/login/"
    assert post_json(client, "accounts:security-key-begin").status_code == 403
    # A session of admin_a that never passed the second step is signed out by the
    # middleware before it could add a key.
    stale = world.client_for("admin_a")
    response = stale.post(reverse("accounts:security-key-add"),
                          {"name": "k", "password": ADMIN_PASSWORD})
    assert response.status_code == 302 and not signed_in(stale)


def test_another_accounts_key_or_a_wrong_one_is_a_failed_sign_in(world, caplog):
    mine, theirs = SoftKey(), SoftKey()
    assert add_key(world.client_for("admin_a"), mine).status_code == 200
    assert add_key(world.client_for("admin_b"), theirs).status_code == 200
    client, _ = password_step(world.admin_a.username)
    assert key_step(client, theirs).status_code == 403
    assert key_step(client, SoftKey()).status_code == 403
    lines = [r.getMessage() for r in caplog.records if r.name == "mailadmin.auth"]
    assert len([line for line in lines if f'"{world.admin_a.username}"' in line]) == 2
    for _ in range(2):
        assert key_step(client, theirs).status_code == 403
    # The fifth failure locks the name out; the step is gone.
    assert key_step(client, theirs).status_code == 429
    assert not signed_in(client)
    assert post_json(client, "accounts:sign-in-key-begin").status_code == 403
    # Locked out: even the right password and key do not sign in now.
    late, response = password_step(world.admin_a.username)
    assert not signed_in(late) and response.status_code == 429


def test_removing_a_key_needs_the_password_and_the_last_one_stays(world):
    client = world.client_for("admin_a")
    assert add_key(client, SoftKey(), name="one").status_code == 200
    assert add_key(client, SoftKey(), name="two").status_code == 200
    one, two = WebAuthnCredential.objects.filter(user=world.admin_a).order_by("pk")
    url = reverse("accounts:security-key-remove", args=[one.pk])
    assert client.post(url, {"password": "wrong password"}).status_code == 400
    assert client.post(url, {"password": ADMIN_PASSWORD}).status_code == 302
    assert twofactor.has_two_factor(world.admin_a)
    # Someone else's key is not found.
    assert add_key(world.client_for("admin_b"), SoftKey()).status_code == 200
    theirs = WebAuthnCredential.objects.get(user=world.admin_b)
    assert client.post(reverse("accounts:security-key-remove", args=[theirs.pk]),
                       {"password": ADMIN_PASSWORD}).status_code == 404
    # The last one would turn two-factor off with the password alone: "Turn off" asks
    # for a code too.
    response = client.post(reverse("accounts:security-key-remove", args=[two.pk]),
                           {"password": ADMIN_PASSWORD})
    assert response.status_code == 400 and b"This is your last second step" in response.content
    assert twofactor.has_security_key(world.admin_a)
    rows = AuditEntry.objects.filter(action="twofactor.key_remove").order_by("pk")
    assert [r.after for r in rows] == [{"key": "one"}]


def test_keys_count_for_the_policy(world):
    twofactor.set_required_for_domain(actor=Actor.account("root"), domain=world.a, required=True)
    # At the sign-in set-up step a key may be the second step instead of an app.
    client, response = password_step(world.admin_a.username)
    assert response["Location"] == "/login/enrol/"
    key = SoftKey()
    assert add_key(client, key, password=None).status_code == 200
    assert signed_in(client) and client.session[signin.VERIFIED] is True
    assert client.get(reverse("accounts:security-key-added")).content.count(b"<li><code>") == 10
    # Now the password leads to the code step, where the key signs in.
    again, response = password_step(world.admin_a.username)
    assert response["Location"] == reverse("accounts:sign-in-code")
    assert key_step(again, key).status_code == 200 and signed_in(again)
    # The last second step of an account that must use one stays.
    only = WebAuthnCredential.objects.get(user=world.admin_a)
    response = again.post(reverse("accounts:security-key-remove", args=[only.pk]),
                          {"password": ADMIN_PASSWORD})
    assert response.status_code == 400 and b"must use two-factor" in response.content
    assert twofactor.has_security_key(world.admin_a)
    # A session held at set-up by a new policy may add a key too.
    twofactor.set_required_for_all_admins(actor=Actor.account("root"), required=True)
    held = world.client_for("admin_b")
    assert held.get(reverse("accounts:two-factor"))["Location"] == "/two-factor/enrol/"
    assert add_key(held, SoftKey()).status_code == 200
    assert held.get(reverse("accounts:two-factor")).status_code == 200


def test_an_authenticator_app_added_beside_a_key_keeps_the_recovery_codes(world):
    client = world.client_for("admin_a")
    assert add_key(client, SoftKey()).status_code == 200
    before = twofactor.recovery_codes_left(world.admin_a)
    assert enrol(world.admin_a) == [] and twofactor.recovery_codes_left(world.admin_a) == before
    twofactor.reset_two_factor(actor=Actor.account("root"), user=world.admin_a)
    assert not WebAuthnCredential.objects.filter(user=world.admin_a).exists()


def test_no_keys_on_an_ip_address(world):
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(world.admin_a)
    page = client.get(reverse("accounts:security-key-add"))
    assert b"opened by its name" in page.content
    client.post(reverse("accounts:security-key-add"), {"name": "k", "password": ADMIN_PASSWORD})
    assert post_json(client, "accounts:security-key-begin").status_code == 403


def test_a_set_up_step_left_open_cannot_add_a_second_step_once_the_account_has_one(world):
    """The sign-in set-up step (no password asked again) is for an account with no
    second step: one set up meanwhile elsewhere (the owner, in another session) must be
    passed, not bypassed by adding another one from the stale step."""
    twofactor.set_required_for_domain(actor=Actor.account("root"), domain=world.a, required=True)
    client, response = password_step(world.admin_a.username)
    assert response["Location"] == "/login/enrol/"
    # The key named and its ceremony begun; meanwhile the owner sets up an app elsewhere.
    assert client.post(reverse("accounts:security-key-add"), {"name": "mine"}).status_code == 200
    options = post_json(client, "accounts:security-key-begin")
    assert options.status_code == 200
    enrol(world.admin_a)
    done = post_json(client, "accounts:security-key-complete", SoftKey().create(options.json()))
    assert done.status_code in (400, 403), done.content
    assert not signed_in(client) and not twofactor.has_security_key(world.admin_a)
    assert not AuditEntry.objects.filter(action="twofactor.key_add").exists()
    # Nor may the step start a key afresh: the app's code is its way on.
    assert client.get(reverse("accounts:security-key-add"))["Location"] == "/login/"
    assert post_json(client, "accounts:security-key-begin").status_code == 403


def test_a_set_up_step_left_open_cannot_add_an_app_once_the_account_has_a_key(world):
    twofactor.set_required_for_domain(actor=Actor.account("root"), domain=world.a, required=True)
    client, response = password_step(world.admin_a.username)
    assert response["Location"] == "/login/enrol/"
    secret = client.get(reverse("accounts:sign-in-enrol")).wsgi_request.session[signin.ENROLLING]
    assert add_key(world.client_for("admin_a"), SoftKey()).status_code == 200  # the owner
    response = client.post(reverse("accounts:sign-in-enrol"), {"code": code(secret)})
    assert not signed_in(client) and not twofactor.has_authenticator(world.admin_a)
    assert response.status_code in (302, 400)


def test_the_set_up_steps_services_refuse_a_second_step_set_up_meanwhile(world):
    """What the views' checks leave open (an app set up between them and the write) the
    services close, under the account's row lock."""
    enrol(world.admin_a)
    party = securitykeys.RelyingParty(rp_id="testserver", origin=ORIGIN)
    options, state = securitykeys.begin_registration(party=party, user=world.admin_a)
    with pytest.raises(ValidationError, match="meanwhile"):
        securitykeys.add_key(actor=Actor.account("t"), user=world.admin_a, party=party,
                             name="k", state=state, answer=SoftKey().create(options),
                             first_only=True)
    key_only = world.admin_b
    options, state = securitykeys.begin_registration(party=party, user=key_only)
    securitykeys.add_key(actor=Actor.account("t"), user=key_only, party=party, name="k",
                         state=state, answer=SoftKey().create(options))
    with pytest.raises(ValidationError, match="meanwhile"):
        twofactor.enable(actor=Actor.account("t"), user=key_only, secret=SECRET, code=code(),
                         first_only=True)
    assert not twofactor.has_authenticator(key_only)
    assert WebAuthnCredential.objects.filter(user=world.admin_a).count() == 0
