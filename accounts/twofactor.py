"""Two-factor sign-in: who has it, who must, turning it on and off, checking a code.

Devices are django-otp's: one TOTP device (an authenticator app), any number
of security keys (django-otp-webauthn's credentials, accounts.securitykeys)
and one static device holding the recovery codes. django-otp keeps the time step of
the last accepted code (`last_t`), so a code is good once, and throttles
guessing per device (2**(n-1) seconds after n wrong codes in a row). Devices
are read with SELECT ... FOR UPDATE (SQLite: the IMMEDIATE transaction), so
two requests with the same code cannot both pass.

Secrets and recovery codes never go into the audit log.
"""

from __future__ import annotations

import base64
import enum
import re
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode

import segno
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.util import random_hex
from django_otp_webauthn.models import WebAuthnCredential

from accounts import sessions
from accounts.models import TwoFactorPolicy
from core import audit
from core.actor import MAILBOX_ACCOUNT_PREFIX, Actor
from domains.models import Domain, DomainAdmin, Mailbox

RECOVERY_CODES = 10
# What a typed code may look like once spaces and dashes are gone: six digits
# (the app) or a recovery code (eight letters and digits of base32).
TOTP_CODE = re.compile(r"[0-9]{6}")
RECOVERY_CODE = re.compile(r"[a-z2-7]{8}")
# Longer input is refused by the forms before anything is looked up.
MAX_CODE_LENGTH = 64


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    RECOVERY_CODE = "recovery code accepted"
    WRONG = "wrong"
    THROTTLED = "throttled"


@dataclass(frozen=True)
class Check:
    verdict: Verdict
    retry_at: datetime | None = None  # when THROTTLED

    @property
    def passed(self) -> bool:
        return self.verdict in (Verdict.ACCEPTED, Verdict.RECOVERY_CODE)


def normalize_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code[:MAX_CODE_LENGTH]).lower()


def is_mailbox_account(user: User) -> bool:
    return user.username.startswith(MAILBOX_ACCOUNT_PREFIX)


def has_device(user: User) -> bool:
    """Any authenticator, key or recovery codes, confirmed or not: what a reset would remove."""
    return (TOTPDevice.objects.filter(user=user).exists()
            or WebAuthnCredential.objects.filter(user=user).exists()
            or StaticDevice.objects.filter(user=user).exists())


def accounts_with_device(users: list[User]) -> set[int]:
    """The ids of those of `users` that have anything a reset would remove (three queries)."""
    return (set(TOTPDevice.objects.filter(user__in=users).values_list("user_id", flat=True))
            | set(WebAuthnCredential.objects.filter(user__in=users)
                  .values_list("user_id", flat=True))
            | set(StaticDevice.objects.filter(user__in=users).values_list("user_id", flat=True)))


def mailbox_user(mailbox: Mailbox) -> User | None:
    """The mailbox's session account, if it ever signed in (accounts.services.mailbox_account)."""
    return User.objects.filter(username=f"{MAILBOX_ACCOUNT_PREFIX}{mailbox.pk}").first()


def has_two_factor(user: User) -> bool:
    """An authenticator app or a security key: sign-in asks for the second step."""
    return has_authenticator(user) or has_security_key(user)


def has_authenticator(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def has_security_key(user: User) -> bool:
    return WebAuthnCredential.objects.filter(user=user, confirmed=True).exists()


def recovery_codes_left(user: User) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def required_for(user: User) -> bool:
    """Whether this account must sign in with a second step (mailbox users never must)."""
    if is_mailbox_account(user):
        return False
    policy = TwoFactorPolicy.objects.filter(pk=1).first()
    if policy is None:
        return False
    if policy.all_admins:
        return True
    return DomainAdmin.objects.filter(user=user, domain__in=policy.domains.all()).exists()


def new_secret() -> str:
    """A fresh TOTP key, hex as django-otp stores it (20 random bytes, as RFC 4226 advises)."""
    return random_hex(20)


def otpauth_url(*, secret: str, account: str) -> str:
    """The otpauth:// URL an authenticator app reads from the QR code."""
    issuer = settings.MAILADMIN_TWO_FACTOR_ISSUER
    key = base64.b32encode(bytes.fromhex(secret)).decode("ascii").rstrip("=")
    query = urlencode({"secret": key, "issuer": issuer, "algorithm": "SHA1",
                       "digits": 6, "period": 30}, quote_via=quote)
    return f"otpauth://totp/{quote(issuer)}:{quote(account)}?{query}"


def secret_text(secret: str) -> str:
    """The key as people type it into an app: base32 in groups of four."""
    key = base64.b32encode(bytes.fromhex(secret)).decode("ascii").rstrip("=")
    return " ".join(key[i:i + 4] for i in range(0, len(key), 4))


def qr_svg(url: str) -> str:
    """The QR code as inline SVG markup, drawn here (no outside service, no style attribute)."""
    svg: str = segno.make(url, error="m").svg_inline(scale=5, border=4, title="QR code")
    return svg


def _matching_step(secret: str, code: str) -> int | None:
    """The time step `code` belongs to (this one, the one before or after), or None."""
    if not TOTP_CODE.fullmatch(code):
        return None
    totp = TOTP(bytes.fromhex(secret), step=30, t0=0, digits=6, drift=0)
    totp.time = time.time()
    if not totp.verify(int(code), tolerance=1):
        return None
    step: int = totp.t()
    return step


def account_for_update(user: User) -> User:
    return User.objects.select_for_update().get(pk=user.pk)


def recovery_codes(user: User) -> list[str]:
    """A new set of recovery codes; the old set is gone."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name="recovery codes", confirmed=True)
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    return codes


# Refused at the sign-in set-up step when the account got a second step after the
# password was typed (set up in another session): that one must be passed instead.
SET_UP_MEANWHILE = ("Two-factor sign-in was set up for this account meanwhile: sign in again "
                    "and use it.")


def enable(*, actor: Actor, user: User, secret: str, code: str,
           first_only: bool = False) -> list[str]:
    """Adds the authenticator holding `secret`, once `code` (read from that app) proves it;
    returns the recovery codes, to be shown once, when it is the account's first second
    step (an account with a security key keeps the codes it has: none returned).
    `first_only`: only as the account's first second step (the sign-in set-up step,
    which asks no password again and signs in)."""
    if not re.fullmatch(r"[0-9a-f]{40}", secret):
        raise ValidationError("The setup expired; start again.")
    step = _matching_step(secret, normalize_code(code))
    if step is None:
        raise ValidationError({"code": "That code does not match: type the code the app "
                                       "shows now (check the phone's clock)."})
    with transaction.atomic():
        locked = account_for_update(user)
        if first_only and has_two_factor(locked):
            raise ValidationError(SET_UP_MEANWHILE)
        if has_authenticator(locked):
            raise ValidationError("An authenticator app is already set up for this account.")
        first = not has_security_key(locked)
        TOTPDevice.objects.filter(user=locked).delete()
        # last_t: the code just typed cannot sign in again.
        TOTPDevice.objects.create(user=locked, name="authenticator app", key=secret,
                                  confirmed=True, last_t=step)
        codes = recovery_codes(locked) if first else []
        audit.record(actor=actor, action="twofactor.enable", obj=locked,
                     after={"recovery_codes": len(codes)} if first else {"app": "added"})
    return codes


def disable(*, actor: Actor, user: User) -> None:
    """Turns the second step off (the view has checked the password and a code)."""
    with transaction.atomic():
        locked = account_for_update(user)
        if required_for(locked):
            raise ValidationError("This account must use two-factor sign-in; it cannot be "
                                  "turned off (a superadmin decides who must).")
        if not has_two_factor(locked):
            return
        TOTPDevice.objects.filter(user=locked).delete()
        WebAuthnCredential.objects.filter(user=locked).delete()
        StaticDevice.objects.filter(user=locked).delete()
        audit.record(actor=actor, action="twofactor.disable", obj=locked)


def reset_two_factor(*, actor: Actor, user: User) -> int:
    """Someone else's second step removed, for an owner who lost both the phone and the
    recovery codes; every session of the account ends. How many sessions ended.

    Who may is the view's to check (a superadmin for an admin, the mailbox's admins
    for a mailbox user). An account the policy requires is sent to set up a new
    authenticator at its next sign-in (accounts.signin, the enrolment step).
    """
    if actor == Actor.account(user.get_username()):
        raise ValidationError("Your own two-factor sign-in is on your own two-factor page.")
    with transaction.atomic():
        locked = account_for_update(user)
        if not has_device(locked):
            raise ValidationError(f"{account_name(locked)} has no two-factor sign-in to reset.")
        TOTPDevice.objects.filter(user=locked).delete()
        WebAuthnCredential.objects.filter(user=locked).delete()
        StaticDevice.objects.filter(user=locked).delete()
        ended = sessions.end_sessions(locked)
        audit.record(actor=actor, action="twofactor.reset", obj=locked,
                     domain=_mailbox_domain(locked) or "",
                     after={"account": account_name(locked), "sessions_ended": ended})
    return ended


def account_name(user: User) -> str:
    """The name the account signs in with: a mailbox user's address, an admin's user name."""
    return user.email if is_mailbox_account(user) else user.get_username()


def _mailbox_domain(user: User) -> Domain | None:
    """A mailbox user's domain, so the domain's admins read the row in their log."""
    mailbox_id = user.get_username().removeprefix(MAILBOX_ACCOUNT_PREFIX)
    if not is_mailbox_account(user) or not mailbox_id.isdigit():
        return None
    mailbox = Mailbox.objects.select_related("domain").filter(pk=int(mailbox_id)).first()
    return mailbox.domain if mailbox is not None else None


def renew_recovery_codes(*, actor: Actor, user: User) -> list[str]:
    """A new set of recovery codes (the view has checked a code); the old ones stop working."""
    with transaction.atomic():
        locked = account_for_update(user)
        if not has_two_factor(locked):
            raise ValidationError("Two-factor sign-in is not on for this account.")
        codes = recovery_codes(locked)
        audit.record(actor=actor, action="twofactor.recovery_codes", obj=locked,
                     after={"recovery_codes": len(codes)})
    return codes


def check(*, user: User, code: str) -> Check:
    """Checks a code from the app or a recovery code. Each is good once; wrong codes are
    throttled per device. The caller counts failures toward the sign-in lockout."""
    typed = normalize_code(code)
    with transaction.atomic():
        if TOTP_CODE.fullmatch(typed):
            devices: list[TOTPDevice | StaticDevice] = list(
                TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True))
            passed = Verdict.ACCEPTED
        else:
            devices = list(StaticDevice.objects.select_for_update()
                           .filter(user=user, confirmed=True))
            passed = Verdict.RECOVERY_CODE
            if not RECOVERY_CODE.fullmatch(typed):
                typed = ""  # checked all the same: counts and throttles like a wrong code
        for device in devices:
            allowed, why = device.verify_is_allowed()
            if not allowed:
                return Check(Verdict.THROTTLED, (why or {}).get("locked_until"))
            if typed and device.verify_token(typed):
                return Check(passed)
            if not typed:
                device.throttle_increment()
    return Check(Verdict.WRONG)


def set_required_for_all_admins(*, actor: Actor, required: bool) -> None:
    with transaction.atomic():
        policy = TwoFactorPolicy.current()
        policy = TwoFactorPolicy.objects.select_for_update().get(pk=policy.pk)
        if policy.all_admins == required:
            return
        policy.all_admins = required
        policy.save(update_fields=["all_admins"])
        audit.record(actor=actor, action="twofactor.policy", obj=policy,
                     before={"all_admins": not required}, after={"all_admins": required})


def set_required_for_domain(*, actor: Actor, domain: Domain, required: bool) -> None:
    """The admins of `domain` must (or need no longer) sign in with a second step."""
    with transaction.atomic():
        policy = TwoFactorPolicy.current()
        policy = TwoFactorPolicy.objects.select_for_update().get(pk=policy.pk)
        present = policy.domains.filter(pk=domain.pk).exists()
        if present == required:
            return
        if required:
            policy.domains.add(domain)
        else:
            policy.domains.remove(domain)
        audit.record(actor=actor, action="twofactor.domain", obj=policy, domain=domain,
                     before={"two_factor_required": present},
                     after={"two_factor_required": required})
