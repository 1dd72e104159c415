"""Sign-in: the password, then (for accounts with one) the second step.

See accounts.signin for why nothing is signed in before the second step.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from accounts import signin, twofactor
from accounts.forms import CodeForm, EnrolForm
from accounts.security import lockout_response
from core.actor import MAILBOX_ACCOUNT_PREFIX, Actor
from core.http import show_errors


def _actor(step: signin.Pending) -> Actor:
    if twofactor.is_mailbox_account(step.user):
        return Actor.mailbox(step.user.email)
    return Actor.account(step.user.get_username())


class SignInView(LoginView):
    """Django's sign-in page; a right password for an account with a second step (or
    one that must set one up) goes on to that step instead of signing in."""

    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        user = form.get_user()
        has_device = twofactor.has_two_factor(user)
        if not has_device and not twofactor.required_for(user):
            return super().form_valid(form)
        signin.begin(self.request, user, name=form.cleaned_data["username"],
                     next_url=self.get_success_url(), enrol=not has_device)
        return redirect("accounts:sign-in-code" if has_device else "accounts:sign-in-enrol")


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def sign_in_code(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    step = signin.pending(request)
    if step is None or step.enrol:
        return redirect("accounts:sign-in-enrol" if step else "login")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if signin.locked_out(request, step):
            signin.drop(request)
            return lockout_response(request)
        result = twofactor.check(user=step.user, code=form.cleaned_data["code"])
        if result.passed:
            signin.finish(request, step, verified=True)
            if result.verdict is twofactor.Verdict.RECOVERY_CODE:
                left = twofactor.recovery_codes_left(step.user)
                messages.warning(request, f"You signed in with a recovery code; {left} left. "
                                          "Make new ones on the two-factor page if few are left.")
            return redirect(step.next_url or "home")
        if signin.failed(request, step):
            signin.drop(request)
            return lockout_response(request)
        if result.verdict is twofactor.Verdict.THROTTLED and result.retry_at:
            form.add_error("code", "Too many wrong codes: wait a few seconds, then try the "
                                   "code the app shows then.")
        else:
            form.add_error("code", "That code is wrong, or was used already.")
    has_key = twofactor.has_security_key(step.user)
    return render(request, "registration/two_factor_code.html", {
        "form": form, "has_key": has_key, "has_app": twofactor.has_authenticator(step.user),
        "webauthn_config": webauthn_config(request, sign_in=True) if has_key else None,
    }, status=400 if form.errors else 200)


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def sign_in_enrol(request: HttpRequest) -> HttpResponse:
    """An account that must use a second step and has none sets it up before anything else."""
    if request.user.is_authenticated:
        return redirect("home")
    step = signin.pending(request)
    if step is None or not step.enrol:
        return redirect("accounts:sign-in-code" if step else "login")
    form = EnrolForm(request.POST or None)
    secret = request.session.get(signin.ENROLLING) or twofactor.new_secret()
    request.session[signin.ENROLLING] = secret
    if request.method == "POST" and form.is_valid():
        try:
            codes = twofactor.enable(actor=_actor(step), user=step.user, secret=secret,
                                     code=form.cleaned_data["code"], first_only=True)
        except ValidationError as error:
            show_errors(form, error)
        else:
            signin.finish(request, step, verified=True)
            return render(request, "accounts/recovery_codes.html",
                          {"codes": codes, "next_url": step.next_url or "/", "first": True})
    return render(request, "accounts/two_factor_enrol.html", {
        "form": form, "required": True, **enrolment(secret, step.user.get_username()),
    }, status=400 if form.errors else 200)


def enrolment(secret: str, username: str) -> dict[str, str]:
    """What the set-up page shows: the QR code (inline SVG) and the key as text."""
    account = username.removeprefix(MAILBOX_ACCOUNT_PREFIX)
    url = twofactor.otpauth_url(secret=secret, account=account)
    return {"qr_svg": twofactor.qr_svg(url), "secret_text": twofactor.secret_text(secret),
            "account_name": account}


def webauthn_config(request: HttpRequest, *, sign_in: bool) -> dict[str, Any]:
    """What django-otp-webauthn's scripts read from #otp_webauthn_config (json_script: a
    data block, never run): where to post, and the CSRF token to post with."""
    if sign_in:
        urls = {"beginAuthenticationUrl": reverse("accounts:sign-in-key-begin"),
                "completeAuthenticationUrl": reverse("accounts:sign-in-key-complete")}
    else:
        urls = {"beginRegistrationUrl": reverse("accounts:security-key-begin"),
                "completeRegistrationUrl": reverse("accounts:security-key-complete")}
    return {"csrfToken": get_token(request), "autocompleteLoginFieldSelector": None,
            "nextFieldSelector": "input[name='next']", **urls}
