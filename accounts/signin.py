"""The sign-in between the password and the second step.

A right password for an account with a second step (or one that must set
one up) does not sign in: the session only remembers, for
MAILADMIN_TWO_FACTOR_STEP_SECONDS, whose password was right. Django's
login() runs after the code, so until then the session is anonymous to every
page (login_required sends it back to sign in). A wrong code is a failed
sign-in like a wrong password: django-axes counts it toward the lockout and
accounts.security logs the line fail2ban reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth import load_backend, login
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

PENDING = "mailadmin.sign_in.pending"
# The secret of an authenticator being set up, until a code confirms it.
ENROLLING = "mailadmin.two_factor.secret"
# Set on a session that passed the second step.
VERIFIED = "mailadmin.two_factor.verified"
# A security key being registered (its name, once the password was confirmed) and the
# challenge of a key's answer at sign-in (accounts.views_securitykeys).
KEY_NAMING = "mailadmin.security_key.naming"
KEY_ASKING = "mailadmin.security_key.asking"


@dataclass(frozen=True)
class Pending:
    user: User
    backend: str
    name: str  # as typed on the sign-in form: what the lockout and the log count
    next_url: str
    enrol: bool  # must set up a second step before anything else


def begin(request: HttpRequest, user: User, *, name: str, next_url: str, enrol: bool) -> None:
    """Remembers a right password; the session stays signed out."""
    # A new session key: whoever planted the old one learns nothing.
    request.session.cycle_key()
    drop(request)
    request.session[PENDING] = {
        "user": user.pk, "backend": getattr(user, "backend", ""), "name": name[:254],
        "hash": user.get_session_auth_hash(), "at": time.time(), "next": next_url,
        "enrol": enrol,
    }


def pending(request: HttpRequest) -> Pending | None:
    """The remembered password step, while it is fresh and still names a usable account."""
    data: Any = request.session.get(PENDING)
    if not isinstance(data, dict):
        return None
    age = time.time() - float(data.get("at", 0))
    user = None
    if 0 <= age <= settings.MAILADMIN_TWO_FACTOR_STEP_SECONDS and \
            data.get("backend") in settings.AUTHENTICATION_BACKENDS:
        user = load_backend(data["backend"]).get_user(data["user"])
    # A password changed since (the hash moves with it) starts sign-in over.
    if user is None or not user.is_active or not constant_time_compare(
            user.get_session_auth_hash(), str(data.get("hash", ""))):
        drop(request)
        return None
    return Pending(user=user, backend=data["backend"], name=str(data.get("name", "")),
                   next_url=str(data.get("next", "")), enrol=bool(data.get("enrol")))


def drop(request: HttpRequest) -> None:
    for key in (PENDING, ENROLLING, KEY_NAMING, KEY_ASKING):
        request.session.pop(key, None)


def finish(request: HttpRequest, step: Pending, *, verified: bool) -> None:
    """Signs in for real: django-axes resets the name's failures, the sign-in is recorded."""
    drop(request)
    login(request, step.user, backend=step.backend)
    if verified:
        request.session[VERIFIED] = True


def locked_out(request: HttpRequest, step: Pending) -> bool:
    return bool(AxesProxyHandler.is_locked(request, {"username": step.name}))


def failed(request: HttpRequest, step: Pending) -> bool:
    """A wrong code: counted and logged as a failed sign-in. True when that locked it out."""
    user_login_failed.send(sender=__name__, credentials={"username": step.name},
                           request=request)
    return bool(getattr(request, "axes_locked_out", False))
