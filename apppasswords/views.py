"""App passwords: the mailbox user's own page, the same on an admin's mailbox
page, and a domain's "app passwords only" switch. Short views: a permission
helper, a form, one service call."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from apppasswords import services
from apppasswords.forms import AppPasswordForm, RequiredForm
from apppasswords.models import AppPassword
from core.actor import Actor
from core.http import actor, show_errors
from domains.access import (
    admin_required,
    domain_or_404,
    mailbox_or_404,
    mailbox_required,
    own_mailbox,
)
from domains.models import Mailbox

# Revoked rows shown under the live ones (at most services.LIVE_MAX of those).
REVOKED_SHOWN = 10


def _own(request: HttpRequest) -> Mailbox:
    mailbox = own_mailbox(request)
    if mailbox is None:  # mailbox_required has checked; this keeps the type exact
        raise Http404
    return mailbox


def _page(request: HttpRequest, mailbox: Mailbox, who: Actor, *, own: bool) -> HttpResponse:
    form = AppPasswordForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            created = services.create_app_password(
                actor=who, mailbox=mailbox, name=form.cleaned_data["name"],
                protocols=form.cleaned_data["protocols"])
        except ValidationError as error:
            show_errors(form, error)
        else:
            # Shown in this answer only: the token is in no URL, session or row.
            return render(request, "apppasswords/created.html",
                          {"mailbox": mailbox, "created": created.app_password,
                           "token": created.token, "own": own})
    rows = mailbox.app_passwords.all()
    context = {"mailbox": mailbox, "form": form, "own": own,
               "live": rows.filter(revoked__isnull=True)[:services.LIVE_MAX],
               "revoked": rows.filter(revoked__isnull=False)[:REVOKED_SHOWN],
               # Only the login check records usage, and not for cached logins.
               "usage_recorded": bool(settings.MAILADMIN_DOVECOT_LOGIN_CACHE),
               "cache_ttl": settings.MAILADMIN_DOVECOT_AUTH_CACHE_TTL}
    return render(request, "apppasswords/list.html", context, status=400 if form.errors else 200)


def _revoke(request: HttpRequest, mailbox: Mailbox, pk: int, who: Actor) -> None:
    row = AppPassword.objects.filter(mailbox=mailbox, pk=pk).select_related("mailbox").first()
    if row is None:
        raise Http404
    try:
        services.revoke_app_password(actor=who, app_password=row)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Revoked \"{row.name}\": it no longer signs in.")


@mailbox_required
@never_cache
@require_http_methods(["GET", "POST"])
def own_list(request: HttpRequest) -> HttpResponse:
    mailbox = _own(request)
    return _page(request, mailbox, Actor.mailbox(mailbox.email), own=True)


@mailbox_required
@require_POST
def own_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = _own(request)
    _revoke(request, mailbox, pk, Actor.mailbox(mailbox.email))
    return redirect("apppasswords:own")


@admin_required
@never_cache
@require_http_methods(["GET", "POST"])
def mailbox_list(request: HttpRequest, email: str) -> HttpResponse:
    return _page(request, mailbox_or_404(request, email), actor(request), own=False)


@admin_required
@require_POST
def mailbox_revoke(request: HttpRequest, email: str, pk: int) -> HttpResponse:
    mailbox = mailbox_or_404(request, email)
    _revoke(request, mailbox, pk, actor(request))
    return redirect("apppasswords:mailbox", email=mailbox.email)


@admin_required
@require_POST
def domain_required(request: HttpRequest, name: str) -> HttpResponse:
    domain = domain_or_404(request, name)
    form = RequiredForm(request.POST)
    required = form.is_valid() and form.cleaned_data["required"]
    try:
        services.set_app_passwords_required(actor=actor(request), domain=domain,
                                            required=required)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, (
            f"Mail programs of {domain.name} now sign in with app passwords only."
            if required else f"Mail programs of {domain.name} may use the main password again."))
    return redirect("domains:domain-detail", name=domain.name)
