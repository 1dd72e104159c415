"""Pages for aliases and alias domains: permission helper, form, one service call."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from core.http import (
    PAGE_SIZE,
    actor,
    confirm_delete,
    is_htmx,
    page_of,
    show_errors,
    superadmin_required,
)
from domains import search, services
from domains.access import admin_required, alias_domain_or_404, alias_or_404, domain_or_404
from domains.forms_aliases import AliasDomainEditForm, AliasDomainForm, AliasEditForm, AliasForm
from domains.models import Alias
from domains.reach import checked_domains, in_reach

# ---------------------------------------------------------------- aliases


@admin_required
def all_aliases(request: HttpRequest) -> HttpResponse:
    """The aliases of every domain in reach, a page at a time, in address order."""
    query = search.address_term(request.GET.get("q", "")[:254])
    aliases = in_reach(request.user, Alias.objects.all())
    if query:
        aliases = aliases.filter(source__prefix=query)
    page = page_of(request)
    rows = list(aliases.order_by("source").only("source", "destinations", "active")
                [(page - 1) * PAGE_SIZE: page * PAGE_SIZE + 1])
    context = {"aliases": rows[:PAGE_SIZE], "page": page, "has_next": len(rows) > PAGE_SIZE,
               "q": query}
    template = "domains/_alias_rows.html" if is_htmx(request) else "domains/all_aliases.html"
    return render(request, template, context)


@admin_required
def alias_list(request: HttpRequest, name: str) -> HttpResponse:
    domain = domain_or_404(request, name)
    query = search.address_term(request.GET.get("q", "")[:254])
    aliases = Alias.objects.filter(domain=domain)
    if query:
        # An index range on (domain_id, source); see domains.search.
        aliases = aliases.filter(source__prefix=query)
    page = page_of(request)
    rows = list(aliases.order_by("source").only("source", "destinations", "active")
                [(page - 1) * PAGE_SIZE: page * PAGE_SIZE + 1])
    context = {"domain": domain, "aliases": rows[:PAGE_SIZE], "page": page,
               "has_next": len(rows) > PAGE_SIZE, "q": query}
    template = "domains/_alias_rows.html" if is_htmx(request) else "domains/alias_list.html"
    return render(request, template, context)


@admin_required
@require_http_methods(["GET", "POST"])
def alias_create(request: HttpRequest, name: str) -> HttpResponse:
    domain = domain_or_404(request, name)
    # A link may name the address to add (the checklist's postmaster@ and abuse@).
    initial = {"local_part": request.GET.get("local_part", "")[:64]}
    form = AliasForm(request.POST or None, domain_name=domain.name, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        local = "" if form.is_catchall else data["local_part"].strip()
        try:
            alias = services.create_alias(
                actor=actor(request), source=f"{local}@{domain.name}",
                destinations=data["destinations"], checked_domains=checked_domains(request.user))
        except ValidationError as error:
            # The address is the typed part, or the catch-all choice itself.
            show_errors(form, error, {"source": "kind" if form.is_catchall else "local_part"})
        else:
            messages.success(request, f"Added {alias.source}.")
            return redirect("domains:alias-list", name=domain.name)
    return render(request, "domains/alias_form.html", {"form": form, "domain": domain})


@admin_required
@require_http_methods(["GET", "POST"])
def alias_edit(request: HttpRequest, source: str) -> HttpResponse:
    alias = alias_or_404(request, source)
    form = AliasEditForm(request.POST or None, initial={
        "destinations": "\n".join(alias.destination_list), "active": alias.active})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.update_alias(actor=actor(request), alias=alias,
                                  destinations=data["destinations"], active=data["active"],
                                  checked_domains=checked_domains(request.user))
        except ValidationError as error:
            show_errors(form, error)
        else:
            messages.success(request, f"Saved {alias.source}.")
            return redirect("domains:alias-list", name=alias.domain.name)
    return render(request, "domains/alias_edit.html", {"form": form, "alias": alias})


@admin_required
@require_http_methods(["GET", "POST"])
def alias_delete(request: HttpRequest, source: str) -> HttpResponse:
    alias = alias_or_404(request, source)

    def delete() -> str:
        services.delete_alias(actor=actor(request), alias=alias)
        return f"Deleted {alias.source}."

    return confirm_delete(request, "domains/alias_delete.html", {"alias": alias}, delete,
                          reverse("domains:alias-list", args=[alias.domain.name]))


# ---------------------------------------------------------------- alias domains


# Superadmins only: an alias domain adds a domain name to the server, and a
# domain admin must not be able to claim a name they do not own (mail from
# local users to that name would then be delivered here).
@superadmin_required
@require_http_methods(["GET", "POST"])
def alias_domain_create(request: HttpRequest, name: str) -> HttpResponse:
    domain = domain_or_404(request, name)
    form = AliasDomainForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            alias_domain = services.create_alias_domain(
                actor=actor(request), name=form.cleaned_data["name"], target=domain)
        except ValidationError as error:
            show_errors(form, error)
        else:
            messages.success(request, f"Added {alias_domain.name} as an alias of {domain.name}.")
            return redirect("domains:domain-detail", name=domain.name)
    return render(request, "domains/aliasdomain_form.html", {"form": form, "domain": domain})


@admin_required
@require_http_methods(["GET", "POST"])
def alias_domain_edit(request: HttpRequest, alias: str) -> HttpResponse:
    alias_domain = alias_domain_or_404(request, alias)
    # An unchecked box sends nothing: a POST can be empty and must still bind the form.
    form = AliasDomainEditForm(request.POST if request.method == "POST" else None,
                               initial={"active": alias_domain.active})
    if request.method == "POST" and form.is_valid():
        try:
            services.set_alias_domain_active(actor=actor(request), alias_domain=alias_domain,
                                             active=form.cleaned_data["active"])
        except ValidationError as error:
            show_errors(form, error)
        else:
            messages.success(request, f"Saved {alias_domain.name}.")
            return redirect("domains:domain-detail", name=alias_domain.target.name)
    return render(request, "domains/aliasdomain_edit.html",
                  {"form": form, "alias_domain": alias_domain})


@admin_required
@require_http_methods(["GET", "POST"])
def alias_domain_delete(request: HttpRequest, alias: str) -> HttpResponse:
    alias_domain = alias_domain_or_404(request, alias)

    def delete() -> str:
        services.delete_alias_domain(actor=actor(request), alias_domain=alias_domain)
        return f"Deleted the alias domain {alias_domain.name}."

    return confirm_delete(request, "domains/aliasdomain_delete.html",
                          {"alias_domain": alias_domain}, delete,
                          reverse("domains:domain-detail", args=[alias_domain.target.name]))
