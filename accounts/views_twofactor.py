"""Every account's own two-factor sign-in, and the superadmins' policy of who must use it."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import authenticate
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import securitykeys, signin, twofactor
from accounts.forms import (
    CodeForm,
    DisableTwoFactorForm,
    OwnEnrolForm,
    RemoveKeyForm,
    RequireForDomainForm,
)
from accounts.models import TwoFactorPolicy, admin_accounts
from accounts.security import lockout_response
from accounts.views_signin import enrolment
from core.actor import Actor
from core.http import actor, page_of, show_errors, superadmin_required
from domains.access import admin_required, mailbox_or_404
from domains.models import Domain


def _account(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def own_actor(user: User) -> Actor:
    if twofactor.is_mailbox_account(user):
        return Actor.mailbox(user.email)
    return Actor.account(user.get_username())


def _sign_in_name(user: User) -> str:
    """The name this account signs in with (a mailbox user: the address)."""
    return user.email if twofactor.is_mailbox_account(user) else user.get_username()


def password_is_right(request: HttpRequest, user: User, password: str) -> bool:
    """This account's own password, through authenticate() so a wrong one is counted and
    logged as at sign-in. The account it returns must be this one: an admin named like
    a mailbox would otherwise pass with the mailbox's password (the mailbox backend)."""
    found = authenticate(request, username=_sign_in_name(user), password=password)
    if found is None:
        return False
    if found.pk != user.pk:
        count_failure(request, user)
        return False
    return True


def count_failure(request: HttpRequest, user: User) -> None:
    step = signin.Pending(user=user, backend="", name=_sign_in_name(user), next_url="",
                          enrol=False)
    signin.failed(request, step)


def _code_counts(request: HttpRequest, user: User, code: str) -> twofactor.Check:
    """A code typed on a signed-in page: a wrong one counts like a failed sign-in."""
    result = twofactor.check(user=user, code=code)
    if not result.passed:
        count_failure(request, user)
    return result


@login_required
@never_cache
def two_factor(request: HttpRequest) -> HttpResponse:
    return page_with(request, _account(request), status=200)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def two_factor_enrol(request: HttpRequest) -> HttpResponse:
    user = _account(request)
    if twofactor.has_authenticator(user):
        return redirect("accounts:two-factor")
    form = OwnEnrolForm(request.POST or None)
    secret = request.session.get(signin.ENROLLING) or twofactor.new_secret()
    request.session[signin.ENROLLING] = secret
    if request.method == "POST" and form.is_valid():
        try:
            if not password_is_right(request, user, form.cleaned_data["password"]):
                raise ValidationError({"password": "That is not your password."})
            codes = twofactor.enable(actor=own_actor(user), user=user, secret=secret,
                                     code=form.cleaned_data["code"])
        except ValidationError as error:
            show_errors(form, error)
            if getattr(request, "axes_locked_out", False):
                return lockout_response(request)
        else:
            request.session.pop(signin.ENROLLING, None)
            request.session[signin.VERIFIED] = True
            if not codes:  # a security key came first: its recovery codes stay
                messages.success(request, "The authenticator app is set up.")
                return redirect("accounts:two-factor")
            return render(request, "accounts/recovery_codes.html",
                          {"codes": codes, "next_url": reverse("accounts:two-factor")})
    return render(request, "accounts/two_factor_enrol.html", {
        # Held here by TwoFactorSessionMiddleware when a policy now requires it: say why,
        # and offer no Cancel that would only lead back here.
        "form": form, "required": twofactor.required_for(user),
        **enrolment(secret, user.get_username()),
    }, status=400 if form.errors else 200)


@login_required
@never_cache
@require_POST
def two_factor_disable(request: HttpRequest) -> HttpResponse:
    """Off, with the password and a code (or a recovery code): both are checked and counted."""
    user = _account(request)
    form = DisableTwoFactorForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        if not password_is_right(request, user, data["password"]):
            form.add_error("password", "That is not your password.")
        elif not _code_counts(request, user, data["code"]).passed:
            form.add_error("code", "That code is wrong, or was used already.")
        else:
            try:
                twofactor.disable(actor=own_actor(user), user=user)
            except ValidationError as error:
                show_errors(form, error)
            else:
                request.session.pop(signin.VERIFIED, None)
                messages.success(request, "Two-factor sign-in is off.")
                return redirect("accounts:two-factor")
    if getattr(request, "axes_locked_out", False):
        return lockout_response(request)
    return page_with(request, user, status=400, disable_form=form)


@login_required
@never_cache
@require_POST
def two_factor_recovery(request: HttpRequest) -> HttpResponse:
    """New recovery codes, with a code (or a recovery code); the old ones stop working."""
    user = _account(request)
    form = CodeForm(request.POST)
    if form.is_valid():
        if _code_counts(request, user, form.cleaned_data["code"]).passed:
            try:
                codes = twofactor.renew_recovery_codes(actor=own_actor(user), user=user)
            except ValidationError as error:
                show_errors(form, error)
            else:
                return render(request, "accounts/recovery_codes.html",
                              {"codes": codes, "next_url": reverse("accounts:two-factor")})
        else:
            form.add_error("code", "That code is wrong, or was used already.")
    if getattr(request, "axes_locked_out", False):
        return lockout_response(request)
    return page_with(request, user, status=400, renew_form=form)


def page_with(request: HttpRequest, user: User, *, status: int,
               disable_form: DisableTwoFactorForm | None = None,
               renew_form: CodeForm | None = None) -> HttpResponse:
    return render(request, "accounts/two_factor.html", {
        "enabled": twofactor.has_two_factor(user), "required": twofactor.required_for(user),
        "app": twofactor.has_authenticator(user),
        # One password field per key, each with ids of its own.
        "keys": [(key, RemoveKeyForm(auto_id=f"id_key{key.pk}_%s"))
                 for key in securitykeys.keys(user)],
        "codes_left": twofactor.recovery_codes_left(user),
        "back": reverse("accounts:me" if twofactor.is_mailbox_account(user)
                        else "accounts:account"),
        "disable_form": disable_form or DisableTwoFactorForm(),
        "renew_form": renew_form or CodeForm(),
        "keys_possible": securitykeys.relying_party(request) is not None,
    }, status=status)


@superadmin_required
@require_http_methods(["GET", "POST"])
def two_factor_policy(request: HttpRequest) -> HttpResponse:
    """Who must sign in with a second step: every admin, or the admins of chosen domains."""
    policy = TwoFactorPolicy.current()
    suggest = reverse("accounts:admin-domain-suggest")
    add_form = RequireForDomainForm(suggest_url=suggest)
    if request.method == "POST":
        what = request.POST.get("change", "")
        if what == "all_admins":
            twofactor.set_required_for_all_admins(
                actor=actor(request), required=request.POST.get("required") == "on")
            messages.success(request, "Saved.")
            return redirect("accounts:two-factor-policy")
        if what == "add":
            add_form = RequireForDomainForm(request.POST, suggest_url=suggest)
            if add_form.is_valid():
                twofactor.set_required_for_domain(actor=actor(request),
                                                  domain=add_form.cleaned_data["add"],
                                                  required=True)
                messages.success(request, f"The admins of {add_form.cleaned_data['add'].name} "
                                          "must use two-factor sign-in.")
                return redirect("accounts:two-factor-policy")
        elif what == "remove":
            domain = Domain.objects.filter(pk=_int(request.POST.get("domain"))).first()
            if domain is not None:
                twofactor.set_required_for_domain(actor=actor(request), domain=domain,
                                                  required=False)
                messages.success(request, f"The admins of {domain.name} no longer must.")
            return redirect("accounts:two-factor-policy")
        else:
            return HttpResponse("Unknown change.", status=400)
    domains = Paginator(policy.domains.order_by("name"), 50).get_page(page_of(request))
    return render(request, "accounts/two_factor_policy.html", {
        "policy": policy, "domains": domains, "add_form": add_form,
    }, status=400 if add_form.errors else 200)


def _int(value: str | None) -> int:
    """A posted id, or 0 (never a row) for anything that is not a short number."""
    return int(value) if value and value.isascii() and value.isdigit() and len(value) <= 18 \
        else 0


# --- someone else's: a reset for an owner who lost the phone and the recovery codes ---


@superadmin_required
@require_POST
def admin_two_factor_reset(request: HttpRequest, pk: int) -> HttpResponse:
    """Any admin's but the superadmin's own (that one is on their own page)."""
    user = admin_accounts().filter(pk=pk).first()
    if user is None:
        raise Http404
    _reset(request, user, user.get_username())
    if user.is_superuser:  # superadmins have no edit page
        return redirect("accounts:admin-list")
    return redirect("accounts:admin-edit", user.pk)


@admin_required
def mailbox_two_factor_reset(request: HttpRequest, email: str) -> HttpResponse:
    """A mailbox user's, by a superadmin or an admin of the mailbox's domain."""
    mailbox = mailbox_or_404(request, email)  # before the method: outside reach is a 404
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    user = twofactor.mailbox_user(mailbox)
    if user is None:
        messages.error(request, f"{mailbox.email} has no two-factor sign-in to reset.")
    else:
        _reset(request, user, mailbox.email)
    return redirect("domains:mailbox-edit", mailbox.email)


def _reset(request: HttpRequest, user: User, name: str) -> None:
    """The reset and its message; the ticked box is the confirmation."""
    if request.POST.get("confirm") != "on":
        messages.error(request, f"Tick the box to confirm the reset of {name}'s two-factor "
                                "sign-in; nothing was changed.")
        return
    try:
        ended = twofactor.reset_two_factor(actor=actor(request), user=user)
    except ValidationError as refusal:
        messages.error(request, " ".join(refusal.messages))
        return
    then = ("They must set up a new authenticator at their next sign-in."
            if twofactor.required_for(user) else "They sign in with the password alone now.")
    messages.success(request, f"Reset the two-factor sign-in of {name}; sessions ended: "
                              f"{ended}. {then}")
