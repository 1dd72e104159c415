"""Panel accounts (the audit log is in views_audit)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services, sessions, twofactor
from accounts.forms import AdminDomainsForm, AdminForm, AdminPasswordForm
from accounts.models import admin_accounts
from core.http import (
    actor,
    confirm_delete,
    show_errors,
    superadmin_required,
)
from domains.models import DomainAdmin


@superadmin_required
def admin_list(request: HttpRequest) -> HttpResponse:
    admins = list(admin_accounts()
                  .order_by("username")[:500])
    grants: dict[int, list[str]] = {}
    for user_id, name in DomainAdmin.objects.filter(user__in=admins).values_list(
            "user_id", "domain__name"):
        grants.setdefault(user_id, []).append(name)
    rows = [(a, sorted(grants.get(a.pk, []))) for a in admins]
    # Superadmins have no edit page: their two-factor reset is offered here.
    supers = [a for a in admins if a.is_superuser]
    return render(request, "accounts/admin_list.html",
                  {"rows": rows, "with_device": twofactor.accounts_with_device(supers)})


@superadmin_required
@require_http_methods(["GET", "POST"])
def admin_create(request: HttpRequest) -> HttpResponse:
    form = AdminForm(request.POST or None, suggest_url=reverse("accounts:admin-domain-suggest"))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = services.create_admin(
                actor=actor(request), username=data["username"], password=data["password"],
                superadmin=data["superadmin"],
                domains=[] if data["superadmin"] else data["domains"])
        except ValidationError as error:
            show_errors(form, error)
        else:
            messages.success(request, f"Added {user.username}.")
            return redirect("accounts:admin-list")
    return render(request, "accounts/admin_form.html", {"form": form, "title": "New admin"})


@superadmin_required
@require_http_methods(["GET", "POST"])
def admin_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = admin_accounts().filter(pk=pk, is_superuser=False).first()
    if user is None:
        raise Http404
    granted = sorted(DomainAdmin.objects.filter(user=user).values_list("domain__name", flat=True))
    form = AdminDomainsForm(request.POST or None, granted=granted,
                            suggest_url=reverse("accounts:admin-domain-suggest"))
    if request.method == "POST" and form.is_valid():
        try:
            services.change_admin_domains(actor=actor(request), user=user,
                                          add=form.cleaned_data["add"],
                                          remove=form.cleaned_data["remove"])
        except ValidationError as error:
            show_errors(form, error, {"domains": "add"})
        else:
            messages.success(request, f"Saved the domains of {user.username}.")
            return redirect("accounts:admin-edit", user.pk)
    return render(request, "accounts/admin_domains.html",
                  {"form": form, "title": f"Domains of {user.username}", "account": user,
                   "has_device": twofactor.has_device(user)},
                  status=400 if form.errors else 200)


@superadmin_required
def admin_domain_suggest(request: HttpRequest) -> HttpResponse:
    """<option>s for the picker's <datalist>: domains starting with the last name typed."""
    typed = next((request.GET[k] for k in ("add", "domains", "q") if k in request.GET), "")
    head, names = selectors.domain_suggestions(typed)
    return render(request, "accounts/_domain_suggestions.html", {"head": head, "names": names})


def _admin_or_404(pk: int) -> User:
    """Any panel account, superadmins too; never a mailbox user's session account."""
    user = admin_accounts().filter(pk=pk).first()
    if user is None:
        raise Http404
    return user


@superadmin_required
@never_cache
@require_http_methods(["GET", "POST"])
def admin_password(request: HttpRequest, pk: int) -> HttpResponse:
    user = _admin_or_404(pk)
    # Bound on every POST: an empty one (both fields left empty) asks for a generated password.
    form = AdminPasswordForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        own = user.pk == request.user.pk
        typed = form.cleaned_data["password"]
        try:
            if typed:
                services.set_admin_password(actor=actor(request), user=user, password=typed)
                generated = ""
            else:
                generated = services.reset_admin_password(
                    actor=actor(request), user=user,
                    keep_session=request.session.session_key if own else None)
        except ValidationError as error:
            show_errors(form, error)
        else:
            if own:
                sessions.keep_signed_in(request, user)
            if generated:
                return render(request, "accounts/admin_password_shown.html",
                              {"account": user, "password": generated})
            messages.success(request, f"Changed the password of {user.username}; "
                                      "its other sessions are ended.")
            return redirect("accounts:admin-list")
    return render(request, "accounts/admin_form.html",
                  {"form": form, "title": f"New password for {user.username}"})


@superadmin_required
@require_POST
def admin_active(request: HttpRequest, pk: int) -> HttpResponse:
    user = _admin_or_404(pk)
    active = bool(request.POST.get("active"))
    try:
        services.set_admin_active(actor=actor(request), user=user, active=active)
    except ValidationError as refusal:
        messages.error(request, " ".join(refusal.messages))
    else:
        messages.success(request, f"{'Enabled' if active else 'Disabled'} {user.username}.")
    return redirect("accounts:admin-list")


@superadmin_required
@require_http_methods(["GET", "POST"])
def admin_delete(request: HttpRequest, pk: int) -> HttpResponse:
    user = _admin_or_404(pk)

    def delete() -> str:
        services.delete_admin(actor=actor(request), user=user)
        return f"Deleted {user.username}."

    return confirm_delete(request, "accounts/admin_delete.html", {"account": user}, delete,
                          reverse("accounts:admin-list"))
