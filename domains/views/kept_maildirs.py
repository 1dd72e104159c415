"""Superadmin pages for the Maildirs of deleted mailboxes: list, restore, purge.

Superadmins only: the addresses and paths are previous tenants' as much as
current ones, so a domain admin gets a 404 like any outsider.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from core.http import PAGE_SIZE, actor, confirm_delete, page_of, show_errors, superadmin_required
from domains import handover, selectors, services
from domains.forms import RestoreMailboxForm
from domains.models import KeptMaildir
from domains.validators import domain_of


def kept_or_404(pk: int) -> KeptMaildir:
    kept = selectors.kept_maildirs().filter(pk=pk).first()
    if kept is None:
        raise Http404
    return kept


@superadmin_required
def kept_maildir_list(request: HttpRequest) -> HttpResponse:
    page = page_of(request)
    rows = list(selectors.kept_maildirs().order_by("deleted_at", "pk")
                [(page - 1) * PAGE_SIZE: page * PAGE_SIZE + 1])
    kept = [(row, domain_of(row.address), selectors.kept_maildir_expiry(row))
            for row in rows[:PAGE_SIZE]]
    return render(request, "domains/kept_maildir_list.html", {
        "kept": kept, "page": page, "has_next": len(rows) > PAGE_SIZE,
        "days": settings.MAILADMIN_KEPT_MAILDIR_DAYS})


@superadmin_required
@require_http_methods(["GET", "POST"])
# It may answer with a generated password (mailbox_password_shown.html).
@never_cache
def kept_maildir_restore(request: HttpRequest, pk: int) -> HttpResponse:
    kept = kept_or_404(pk)
    form = RestoreMailboxForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        typed = form.cleaned_data["password"]
        try:
            password = typed or services.generate_password(email=kept.address)
            mailbox = services.restore_kept_maildir(actor=actor(request), kept=kept,
                                                    password=password)
        except ValidationError as error:
            show_errors(form, error)
        else:
            messages.success(request, f"Restored {mailbox.email} with the mail kept in "
                                      f"{kept.path}.")
            if not typed:
                return handover.show_generated(request, mailbox, password)
            return redirect("domains:mailbox-edit", email=mailbox.email)
    return render(request, "domains/kept_maildir_restore.html", {"form": form, "kept": kept},
                  status=400 if form.errors else 200)


@superadmin_required
@require_http_methods(["GET", "POST"])
def kept_maildir_purge(request: HttpRequest, pk: int) -> HttpResponse:
    kept = kept_or_404(pk)

    def purge() -> str:
        services.purge_kept_maildir(actor=actor(request), kept=kept)
        return f"The mail host removes {kept.path} (the Maildir of {kept.address})."

    return confirm_delete(request, "domains/kept_maildir_purge.html",
                          {"kept": kept, "expires": selectors.kept_maildir_expiry(kept)},
                          purge, reverse("domains:kept-maildir-list"))
