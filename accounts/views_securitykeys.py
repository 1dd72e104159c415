"""Security keys: adding one (after the password), removing one, answering with one at
sign-in. django-otp-webauthn's scripts drive the browser and post JSON here.

Who may do what, checked on every request:
- add: a signed-in account (one with a second step only in a session that passed it;
  TwoFactorSessionMiddleware ends others), or an account at the sign-in set-up step
  (password right, a second step required, none yet); the key's name (and, signed in,
  the password) comes first, and the begin/complete calls need that fresh naming;
- sign in: only a session whose password was right a moment ago (accounts.signin)
  for an account with a key; a refused answer is a failed sign-in for the lockout.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from accounts import securitykeys, signin, twofactor
from accounts.forms import KeyNameForm, RemoveKeyForm
from accounts.security import lockout_response
from accounts.views_signin import webauthn_config
from accounts.views_twofactor import own_actor, page_with, password_is_right
from core.http import show_errors

# Recovery codes made with a first key, shown once by security_key_added.
NEW_CODES = "mailadmin.security_key.codes"
# A key's answer is a few hundred bytes; anything this long is not one.
MAX_ANSWER = 64 * 1024
LOCKED = "Too many failed sign-ins: wait, then sign in again."


def _refused(status: int, detail: str) -> JsonResponse:
    """What the package's scripts show under the button."""
    return JsonResponse({"detail": detail}, status=status)


def _answer(request: HttpRequest) -> dict[str, Any] | None:
    if len(request.body) > MAX_ANSWER:
        return None
    try:
        data = json.loads(request.body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _registrant(request: HttpRequest) -> tuple[User, signin.Pending | None] | None:
    """Whose key may be added in this session, and the sign-in step it is part of."""
    if request.user.is_authenticated:
        user = request.user
        assert isinstance(user, User)
        if twofactor.has_two_factor(user) and not request.session.get(signin.VERIFIED):
            return None  # the middleware signs such a session out; never add a key from it
        return user, None
    step = signin.pending(request)
    # The set-up step is for an account with no second step yet: one set up since the
    # password was typed (in another session) is the one to pass.
    if step is not None and step.enrol and not twofactor.has_two_factor(step.user):
        return step.user, step
    return None


def _naming(request: HttpRequest, user: User) -> dict[str, Any] | None:
    """The key being added: named (after the password) for this account, not long ago."""
    data = request.session.get(signin.KEY_NAMING)
    if not isinstance(data, dict) or data.get("user") != user.pk:
        return None
    age = time.time() - float(data.get("at", 0))
    if not 0 <= age <= settings.MAILADMIN_TWO_FACTOR_STEP_SECONDS:
        request.session.pop(signin.KEY_NAMING, None)
        return None
    return data


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def security_key_add(request: HttpRequest) -> HttpResponse:
    """Names the key (and, signed in, asks the password); then the page to touch it."""
    who = _registrant(request)
    if who is None:
        return redirect("login")
    user, step = who
    party = securitykeys.relying_party(request)
    form = KeyNameForm(request.POST or None, ask_password=step is None)
    context: dict[str, Any] = {"form": form, "possible": party is not None, "step": step}
    if request.method == "POST" and party is not None and form.is_valid():
        try:
            if step is None and not password_is_right(request, user,
                                                      form.cleaned_data["password"]):
                raise ValidationError({"password": "That is not your password."})
        except ValidationError as error:
            show_errors(form, error)
            if getattr(request, "axes_locked_out", False):
                return lockout_response(request)
        else:
            request.session[signin.KEY_NAMING] = {"user": user.pk, "at": time.time(),
                                                  "name": form.cleaned_data["name"]}
            context.update(touch=True, name=form.cleaned_data["name"],
                           webauthn_config=webauthn_config(request, sign_in=False))
    return render(request, "accounts/security_key_add.html", context,
                  status=400 if form.errors else 200)


@never_cache
@require_POST
def security_key_begin(request: HttpRequest) -> HttpResponse:
    who = _registrant(request)
    naming = _naming(request, who[0]) if who else None
    party = securitykeys.relying_party(request)
    if who is None or naming is None or party is None:
        return _refused(403, "Name the key (and confirm your password) first.")
    options, state = securitykeys.begin_registration(party=party, user=who[0])
    naming["state"] = state
    request.session[signin.KEY_NAMING] = naming
    return JsonResponse(options)


@never_cache
@require_POST
def security_key_complete(request: HttpRequest) -> HttpResponse:
    who = _registrant(request)
    naming = _naming(request, who[0]) if who else None
    party = securitykeys.relying_party(request)
    if who is None or naming is None or party is None or "state" not in naming:
        return _refused(403, "Name the key (and confirm your password) first.")
    # The challenge goes before the answer is looked at: it answers once.
    state = naming.pop("state")
    request.session[signin.KEY_NAMING] = naming
    request.session.save()
    user, step = who
    answer = _answer(request)
    if answer is None:
        return _refused(400, "That is not a security key's answer.")
    actor = own_actor(user)
    try:
        key, codes = securitykeys.add_key(actor=actor, user=user, party=party,
                                          name=str(naming["name"]), state=state, answer=answer,
                                          first_only=step is not None)
    except ValidationError as error:
        return _refused(400, " ".join(error.messages))
    if step is not None:
        signin.finish(request, step, verified=True)
        next_url = step.next_url or reverse("home")
    else:
        request.session.pop(signin.KEY_NAMING, None)
        request.session[signin.VERIFIED] = True
        next_url = reverse("accounts:two-factor")
    request.session[NEW_CODES] = {"codes": codes, "next": next_url, "name": key.name}
    return JsonResponse({"id": key.pk, "redirect_url": reverse("accounts:security-key-added")})


@login_required
@never_cache
def security_key_added(request: HttpRequest) -> HttpResponse:
    """The recovery codes made with a first key, shown once; else back to the page."""
    data = request.session.pop(NEW_CODES, None)
    if not isinstance(data, dict):
        return redirect("accounts:two-factor")
    if data.get("codes"):
        return render(request, "accounts/recovery_codes.html",
                      {"codes": data["codes"], "next_url": data["next"], "first": True})
    messages.success(request, f"Security key {data.get('name', '')} added.")
    return redirect(data["next"])


@login_required
@never_cache
@require_POST
def security_key_remove(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    key = securitykeys.keys(user).filter(pk=pk).first()
    if key is None:
        raise Http404
    form = RemoveKeyForm(request.POST)
    if form.is_valid() and password_is_right(request, user, form.cleaned_data["password"]):
        try:
            securitykeys.remove_key(actor=own_actor(user), user=user, key=key)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Security key {key.name} removed.")
            return redirect("accounts:two-factor")
    else:
        messages.error(request, f"Security key {key.name} not removed: that is not your "
                                "password.")
    if getattr(request, "axes_locked_out", False):
        return lockout_response(request)
    return page_with(request, user, status=400)


# --- the second sign-in step with a key ---


def _step_for_key(request: HttpRequest) -> signin.Pending | None:
    """A session whose password was right a moment ago, for an account with a key."""
    if request.user.is_authenticated:
        return None
    step = signin.pending(request)
    if step is None or step.enrol or not twofactor.has_security_key(step.user):
        return None
    return step


@never_cache
@require_POST
def sign_in_key_begin(request: HttpRequest) -> HttpResponse:
    step = _step_for_key(request)
    party = securitykeys.relying_party(request)
    if step is None or party is None:
        return _refused(403, "Sign in with your password first.")
    if signin.locked_out(request, step):
        signin.drop(request)
        return _refused(429, LOCKED)
    options, state = securitykeys.begin_authentication(party=party, user=step.user)
    request.session[signin.KEY_ASKING] = {"user": step.user.pk, "state": state}
    return JsonResponse(options)


@never_cache
@require_POST
def sign_in_key_complete(request: HttpRequest) -> HttpResponse:
    # The challenge goes before anything else: whatever happens next, it answers once.
    asked = request.session.pop(signin.KEY_ASKING, None)
    request.session.save()
    step = _step_for_key(request)
    party = securitykeys.relying_party(request)
    if step is None or party is None:
        return _refused(403, "Sign in with your password first.")
    if signin.locked_out(request, step):
        signin.drop(request)
        return _refused(429, LOCKED)
    if not isinstance(asked, dict) or asked.get("user") != step.user.pk:
        return _refused(400, "Press the button again to use your key.")
    answer = _answer(request)
    key = None if answer is None else securitykeys.verify(
        party=party, user=step.user, state=asked["state"], answer=answer)
    if key is None:
        if signin.failed(request, step):
            signin.drop(request)
            return _refused(429, LOCKED)
        return _refused(403, "That key was not accepted: use a key registered for this "
                             "account.")
    signin.finish(request, step, verified=True)
    return JsonResponse({"id": key.pk, "redirect_url": step.next_url or reverse("home")})
