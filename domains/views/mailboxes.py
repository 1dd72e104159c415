"""Admin pages for mailboxes: permission helper, form, one service call."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from core.http import PAGE_SIZE, actor, confirm_delete, is_htmx, page_of, show_errors
from domains import handover, quota, selectors, services
from domains.access import admin_required, domain_or_404, mailbox_or_404
from domains.forms import MailboxEditForm, MailboxForm
from domains.models import Mailbox
from domains.reach import in_reach
from domains.validators import format_size


@admin_required
def mailbox_list(request: HttpRequest) -> HttpResponse:
    typed = request.GET.get("q", "").strip()[:254]
    mailboxes = in_reach(request.user, Mailbox.objects.all())
    domain_name = request.GET.get("domain", "")
    if domain_name:
        mailboxes = mailboxes.filter(domain=domain_or_404(request, domain_name))
    mailboxes = quota.with_usage(mailboxes.only(
        "email", "name", "quota", "active", "usage__bytes"))
    # Unknown values fall back to the plain list, never an error.
    near = request.GET.get("usage") == "near"
    by_used = request.GET.get("sort") == "used"
    page = page_of(request)
    if typed:
        rows, has_next = selectors.mailbox_search_page(mailboxes, typed, page=page,
                                                       size=PAGE_SIZE)
    else:
        ordered = (quota.near_limit(mailboxes) if near else
                   quota.largest_first(mailboxes) if by_used else mailboxes.order_by("email"))
        rows = list(ordered[(page - 1) * PAGE_SIZE: page * PAGE_SIZE + 1])
        has_next = len(rows) > PAGE_SIZE
    context = {"mailboxes": rows[:PAGE_SIZE], "page": page, "has_next": has_next,
               "q": typed, "domain_name": domain_name, "near": near and not typed,
               "by_used": by_used and not near and not typed}
    template = "domains/_mailbox_rows.html" if is_htmx(request) else "domains/mailbox_list.html"
    return render(request, template, context)


@admin_required
@require_http_methods(["GET", "POST"])
# It may answer with a generated password (mailbox_password_shown.html).
@never_cache
def mailbox_create(request: HttpRequest, name: str) -> HttpResponse:
    domain = domain_or_404(request, name)
    kept = None
    if request.method == "POST" and request.user.is_superuser:
        kept = selectors.kept_maildir_of(f"{request.POST.get('local_part', '')}@{domain.name}")
    form = MailboxForm(request.POST or None,
                       check_url=reverse("domains:mailbox-check", args=[domain.name]),
                       address_problem=lambda local: selectors.new_address_problem(local, domain),
                       kept_maildir=kept.path if kept else "")
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            password = (data["password"]
                        or services.generate_password(email=f"{data['local_part']}@{domain.name}"))
            mailbox = services.create_mailbox(
                actor=actor(request), email=f"{data['local_part']}@{domain.name}",
                password=password, name=data["name"], quota=data["quota"] or None,
                reuse_kept_maildir=bool(data.get("reuse_kept_maildir")))
        except ValidationError as error:
            show_errors(form, error, {"email": "local_part"})
        else:
            messages.success(request, f"Added {mailbox.email}.")
            if not data["password"]:
                return handover.show_generated(request, mailbox, password)
            return redirect("domains:domain-detail", name=domain.name)
    return render(request, "domains/mailbox_form.html", {"form": form, "domain": domain})


@admin_required
def mailbox_check(request: HttpRequest, name: str) -> HttpResponse:
    """Inline validation of a new address as it is typed (htmx): free, taken or invalid."""
    domain = domain_or_404(request, name)
    local = request.GET.get("local_part", "").strip()[:300]
    problem, ok = selectors.new_address_problem(local, domain), False
    if not local:
        problem = ""
    elif problem is None:
        problem, ok = f"{local.lower()}@{domain.name} is free.", True
    return render(request, "domains/_address_check.html", {"message": problem, "ok": ok})


@admin_required
@require_http_methods(["GET", "POST"])
# It may answer with a generated password (mailbox_password_shown.html).
@never_cache
def mailbox_edit(request: HttpRequest, email: str) -> HttpResponse:
    mailbox = mailbox_or_404(request, email)
    form = MailboxEditForm(request.POST or None, initial={
        "name": mailbox.name, "active": mailbox.active,
        "quota": "0" if not mailbox.quota else format_size(mailbox.quota)})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            generated = (services.generate_password(email=mailbox.email)
                         if data["generate"] else None)
            services.update_mailbox(actor=actor(request), mailbox=mailbox, name=data["name"],
                                    quota=data["quota"], active=data["active"],
                                    password=generated or data["password"] or None)
        except ValidationError as error:
            show_errors(form, error)
        else:
            messages.success(request, f"Saved {mailbox.email}.")
            if generated:
                mailbox.refresh_from_db()  # its new password_changed: the sheet's key
                return handover.show_generated(request, mailbox, generated, changed=True)
            return redirect("domains:domain-detail", name=mailbox.domain.name)
    return render(request, "domains/mailbox_edit.html", {"form": form, "mailbox": mailbox})


@admin_required
@require_http_methods(["GET", "POST"])
def mailbox_delete(request: HttpRequest, email: str) -> HttpResponse:
    mailbox = mailbox_or_404(request, email)

    def delete() -> str:
        path = services.delete_mailbox(actor=actor(request), mailbox=mailbox)
        return f"Deleted {mailbox.email}; its mail stays on disk in {path}."

    return confirm_delete(request, "domains/mailbox_delete.html", {"mailbox": mailbox}, delete,
                          reverse("domains:domain-detail", args=[mailbox.domain.name]))
