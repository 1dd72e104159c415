"""Every signed-in account's own things: an admin's password, anyone's sessions."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import authenticate
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services, sessions
from accounts.forms import OwnAdminPasswordForm
from accounts.models import SignIn
from core.actor import Actor
from core.http import actor, is_mailbox_user, show_errors
from domains.access import admin_required
from domains.models import DomainAdmin


def _account(request: HttpRequest) -> User:
    """The signed-in account (the views below are all signed-in only)."""
    user = request.user
    assert isinstance(user, User)
    return user


def _own_actor(request: HttpRequest) -> Actor:
    user = _account(request)
    if is_mailbox_user(user):
        return Actor.mailbox(user.email)
    return actor(request)


@admin_required
def account(request: HttpRequest) -> HttpResponse:
    user = _account(request)
    domains = DomainAdmin.objects.filter(user=user).count()
    return render(request, "accounts/account.html", {"account": user, "domain_count": domains})


@admin_required
@never_cache
@require_http_methods(["GET", "POST"])
def own_password(request: HttpRequest) -> HttpResponse:
    user = _account(request)
    form = OwnAdminPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        # Through authenticate(): a wrong guess here is counted, locked out and
        # logged for fail2ban like one at sign-in.
        if authenticate(request, username=user.username, password=data["current"]) is None:
            form.add_error("current", "That is not your current password.")
        else:
            try:
                ended = services.change_own_admin_password(
                    actor=actor(request), user=user, current=data["current"], new=data["new"],
                    keep_session=request.session.session_key)
            except ValidationError as error:
                show_errors(form, error)
            else:
                sessions.keep_signed_in(request, user)
                messages.success(request, "Your password is changed"
                                 + (f"; {ended} other session{'s' if ended != 1 else ''} ended."
                                    if ended else "."))
                return redirect("accounts:account")
    return render(request, "accounts/own_password.html", {"form": form},
                  status=400 if form.errors else 200)


@login_required
def session_list(request: HttpRequest) -> HttpResponse:
    user = _account(request)
    current = request.session.session_key
    rows = [(row, sessions.browser(row.user_agent), row.session_id == current)
            for row in sessions.live_sign_ins(user)]
    return render(request, "accounts/sessions.html", {
        "rows": rows, "others": sum(1 for *_, mine in rows if not mine),
        "limit": sessions.MAX_SESSIONS})


@login_required
@require_POST
def session_end(request: HttpRequest, pk: int) -> HttpResponse:
    user = _account(request)
    theirs = SignIn.objects.filter(user=user, pk=pk)
    if not theirs.exclude(session_id=request.session.session_key).exists():
        # Another account's session, this very one (that is "Sign out"), or gone.
        messages.error(request, "That session has ended already.")
        return redirect("accounts:sessions")
    try:
        services.end_session(actor=_own_actor(request), user=user, sign_in_id=pk)
    except ValidationError as refusal:
        messages.error(request, " ".join(refusal.messages))
    else:
        messages.success(request, "The session is ended: it is signed out.")
    return redirect("accounts:sessions")


@login_required
@require_POST
def session_end_others(request: HttpRequest) -> HttpResponse:
    ended = services.end_other_sessions(actor=_own_actor(request), user=_account(request),
                                        keep_session=request.session.session_key)
    messages.success(request, f"Ended {ended} other session{'s' if ended != 1 else ''}.")
    return redirect("accounts:sessions")
