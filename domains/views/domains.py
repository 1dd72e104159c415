"""Admin pages for domains: permission helper, form, one service call."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from core.errors import codes
from core.http import (
    PAGE_SIZE,
    actor,
    confirm_delete,
    is_htmx,
    page_of,
    show_errors,
    superadmin_required,
)
from domains import quota, search, selectors, services
from domains.access import admin_required, domain_or_404
from domains.checklist import checklist
from domains.forms import DomainCreateForm, DomainEditForm
from domains.models import Domain
from domains.reach import visible_domains
from domains.validators import format_limit, format_size


@admin_required
def domain_list(request: HttpRequest) -> HttpResponse:
    query = search.domain_term(request.GET.get("q", "")[:253])
    domains = selectors.with_usage(visible_domains(request.user))
    if query:
        domains = domains.filter(name__prefix=query)
    page = page_of(request)
    rows = list(domains[(page - 1) * PAGE_SIZE: page * PAGE_SIZE + 1])
    context = {"domains": rows[:PAGE_SIZE], "page": page, "has_next": len(rows) > PAGE_SIZE,
               "q": query}
    template = "domains/_domain_rows.html" if is_htmx(request) else "domains/domain_list.html"
    return render(request, template, context)


@superadmin_required
@require_http_methods(["GET", "POST"])
def domain_create(request: HttpRequest) -> HttpResponse:
    form = DomainCreateForm(request.POST or None,
                            earlier_kept_maildirs="kept_maildirs" in request.POST)
    if request.method == "POST" and form.is_valid():
        try:
            domain = services.create_domain(actor=actor(request), **form.service_arguments())
        except ValidationError as error:
            if "earlier_kept_maildirs" in codes(error):
                form = DomainCreateForm(request.POST, earlier_kept_maildirs=True)
                form.is_valid()
            show_errors(form, error)
        else:
            messages.success(request, f"Added {domain.name}.")
            return redirect("domains:domain-detail", name=domain.name)
    # The second step of the first day: the dashboard leads here with no domain yet.
    first = not Domain.objects.exists()
    return render(request, "domains/domain_form.html",
                  {"form": form, "title": "Your first domain" if first else "New domain",
                   "first": first})


@admin_required
def domain_detail(request: HttpRequest, name: str) -> HttpResponse:
    domain = domain_or_404(request, name)
    usage = services.domain_usage(domain)
    used = quota.domain_used(domain)
    context = {
        "domain": domain,
        "usage": usage,
        "limits": [
            ("Mailboxes", usage.mailboxes, domain.max_mailboxes, str(usage.mailboxes),
             str(domain.max_mailboxes or "no limit")),
            ("Aliases", usage.aliases, domain.max_aliases, str(usage.aliases),
             str(domain.max_aliases or "no limit")),
            # The sum of the mailboxes' limits, against the domain's.
            ("Quota allocated", usage.quota_total, domain.max_quota,
             format_size(usage.quota_total), format_limit(domain.max_quota)),
            # What Dovecot counted in them, against the same limit.
            ("Quota used", used, domain.max_quota, filesizeformat(used),
             format_limit(domain.max_quota)),
        ],
        "mailboxes": quota.with_usage(domain.mailboxes.order_by("email"))[:PAGE_SIZE],
        "aliases": domain.aliases.order_by("source")[:PAGE_SIZE],
        "alias_domains": domain.alias_domains.order_by("name"),
        "checklist": checklist(domain),
    }
    return render(request, "domains/domain_detail.html", context)


@superadmin_required
@require_http_methods(["GET", "POST"])
def domain_edit(request: HttpRequest, name: str) -> HttpResponse:
    domain = domain_or_404(request, name)
    initial = {"description": domain.description, "max_mailboxes": domain.max_mailboxes,
               "max_aliases": domain.max_aliases, "max_quota": format_limit(domain.max_quota),
               "default_quota": format_limit(domain.default_quota)}
    initial = {k: ("0" if v == "unlimited" else v) for k, v in initial.items()}
    form = DomainEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_domain(actor=actor(request), domain=domain, **form.cleaned_data)
            active = request.POST.get("active") == "on"
            services.set_domain_active(actor=actor(request), domain=domain, active=active)
        except ValidationError as error:
            show_errors(form, error)
        else:
            messages.success(request, f"Saved {domain.name}.")
            return redirect("domains:domain-detail", name=domain.name)
    return render(request, "domains/domain_form.html",
                  {"form": form, "domain": domain, "title": f"Edit {domain.name}"})


@superadmin_required
@require_http_methods(["GET", "POST"])
def domain_delete(request: HttpRequest, name: str) -> HttpResponse:
    domain = domain_or_404(request, name)

    def delete() -> str:
        kept = services.delete_domain(actor=actor(request), domain=domain,
                                      force=request.POST.get("force") == "on")
        return f"Deleted {name}; mail kept on disk for {len(kept)} mailboxes."

    return confirm_delete(request, "domains/domain_delete.html",
                          {"domain": domain, "usage": services.domain_usage(domain)},
                          delete, reverse("domains:domain-list"))
