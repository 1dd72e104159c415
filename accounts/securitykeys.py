"""Security keys and passkeys (WebAuthn) as the second sign-in step, after the password.

django-otp-webauthn supplies the credential model (a django-otp device) and its
wrapper of py_webauthn, which builds the options the browser gets and checks
what comes back: the challenge, the origin, the RP ID hash, the signature and
the sign count. Its own views are not mounted: with nobody signed in they sign
in with a key alone, and they know nothing of accounts.signin's pending step,
the lockout or the audit log. accounts.views_securitykeys checks the state and
calls the functions here.

The challenge of a ceremony is kept in the session by the caller and taken out
before the answer is checked: an answer counts once.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.http import HttpRequest
from django.http.request import split_domain_port
from django_otp_webauthn.exceptions import OTPWebAuthnApiError
from django_otp_webauthn.helpers import WebAuthnHelper
from django_otp_webauthn.models import WebAuthnCredential
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import ResidentKeyRequirement

from accounts import twofactor
from core import audit
from core.actor import Actor

# More than anyone needs (a key on the keyring, one in the drawer, a phone or two).
MAX_KEYS = 20
# What py_webauthn and the package raise for an answer that is not right.
REFUSED = (OTPWebAuthnApiError, WebAuthnException, ValueError, TypeError, KeyError)


@dataclass(frozen=True)
class RelyingParty:
    rp_id: str
    origin: str


def relying_party(request: HttpRequest) -> RelyingParty | None:
    """The RP ID and origin for this request, or None where keys cannot work: the
    panel opened by an IP address (WebAuthn takes host names only) or by a name
    outside MAILADMIN_WEBAUTHN_RP_ID. The host is the one ALLOWED_HOSTS accepted."""
    host = request.get_host().lower()
    domain, _port = split_domain_port(host)
    if not domain:
        return None
    try:
        ipaddress.ip_address(domain.strip("[]"))
    except ValueError:
        pass
    else:
        return None
    rp_id = settings.MAILADMIN_WEBAUTHN_RP_ID or domain
    if domain != rp_id and not domain.endswith(f".{rp_id}"):
        return None
    return RelyingParty(rp_id=rp_id, origin=f"{request.scheme}://{host}")


class _Helper(WebAuthnHelper):
    """The package's helper with this request's RP ID and origin and this panel's names."""

    def __init__(self, party: RelyingParty) -> None:
        super().__init__(request=None)  # type: ignore[arg-type]
        self.party = party

    def get_relying_party_domain(self) -> str:
        return self.party.rp_id

    def get_allowed_origins(self) -> list[str]:
        return [self.party.origin]

    def get_discoverable_credentials_preference(self) -> ResidentKeyRequirement:
        # A second step after the password: the key need not spend one of its few
        # resident slots on this account.
        return ResidentKeyRequirement.DISCOURAGED

    def get_credential_name(self, user: AbstractBaseUser) -> str:
        assert isinstance(user, User)
        return twofactor.account_name(user)

    def get_credential_display_name(self, user: AbstractBaseUser) -> str:
        return self.get_credential_name(user)


def keys(user: User) -> models.QuerySet[WebAuthnCredential]:
    return WebAuthnCredential.objects.filter(user=user, confirmed=True).order_by("created_at",
                                                                                   "pk")


def begin_registration(*, party: RelyingParty, user: User) -> tuple[dict[str, Any], dict[str, Any]]:
    """The options for navigator.credentials.create() and the state to check the answer by."""
    options, state = _Helper(party).register_begin(user=user)
    return options, state


def add_key(*, actor: Actor, user: User, party: RelyingParty, name: str,
            state: dict[str, Any], answer: dict[str, Any],
            first_only: bool = False) -> tuple[WebAuthnCredential, list[str]]:
    """Registers the key that produced `answer`; returns it and the recovery codes, to be
    shown once, when it is the account's first second step (else no codes).
    `first_only`: only as the account's first second step (the sign-in set-up step)."""
    with transaction.atomic():
        locked = twofactor.account_for_update(user)
        if first_only and twofactor.has_two_factor(locked):
            raise ValidationError(twofactor.SET_UP_MEANWHILE)
        if keys(locked).count() >= MAX_KEYS:
            raise ValidationError(f"An account can have {MAX_KEYS} security keys; remove one "
                                  "first.")
        first = not twofactor.has_two_factor(locked)
        try:
            with transaction.atomic():  # a key already registered: only this part undone
                key = _Helper(party).register_complete(user=locked, state=state, data=answer)
        except IntegrityError:
            raise ValidationError("That security key is registered already.") from None
        except REFUSED:
            raise ValidationError("The security key's answer could not be verified; try "
                                  "again.") from None
        key.name = name
        key.save(update_fields=["name"])
        codes = twofactor.recovery_codes(locked) if first else []
        audit.record(actor=actor, action="twofactor.key_add", obj=locked,
                     after={"key": name, **({"recovery_codes": len(codes)} if first else {})})
    return key, codes


def remove_key(*, actor: Actor, user: User, key: WebAuthnCredential) -> None:
    """Removes one of the account's keys (the view has checked the password). Not the
    last second step: that would turn two-factor sign-in off with the password alone,
    where "Turn off" asks for the password and a code (a recovery code for a key-only
    account); an account that must use two-factor keeps it either way."""
    with transaction.atomic():
        locked = twofactor.account_for_update(user)
        found = WebAuthnCredential.objects.select_for_update().filter(
            user=locked, pk=key.pk).first()
        if found is None:
            return
        others = keys(locked).exclude(pk=found.pk).exists() or twofactor.has_authenticator(locked)
        if not others and twofactor.required_for(locked):
            raise ValidationError("This account must use two-factor sign-in: add another "
                                  "key or an authenticator app before removing this one.")
        if not others:
            raise ValidationError("This is your last second step. To turn two-factor sign-in "
                                  "off, use Turn off: it asks for your password and a code "
                                  "(a recovery code will do).")
        found.delete()
        audit.record(actor=actor, action="twofactor.key_remove", obj=locked,
                     after={"key": found.name})


def begin_authentication(*, party: RelyingParty, user: User
                         ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The options for navigator.credentials.get(), naming this account's keys only."""
    options, state = _Helper(party).authenticate_begin(user=user,
                                                       require_user_verification=False)
    return options, state


def verify(*, party: RelyingParty, user: User, state: dict[str, Any],
           answer: dict[str, Any]) -> WebAuthnCredential | None:
    """The key of this account that signed `answer` to the challenge in `state`, or None
    (another account's key, a removed one, a wrong signature or origin, a sign count
    that went back: a clone). Its sign count and last use are saved."""
    try:
        with transaction.atomic():
            key = _Helper(party).authenticate_complete(user=user, state=state, data=answer)
    except REFUSED:
        return None
    if not key.confirmed or key.user_id != user.pk:
        return None
    return key
