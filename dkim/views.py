"""The DKIM key a domain publishes: shown with its record, set by hand, removed."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from core.http import actor, confirm_delete, show_errors
from dkim import records, selectors, services
from dkim.forms import DkimKeyForm
from dkim.models import DkimKey
from domains.access import admin_required, domain_or_404
from domains.models import Domain

PAGE = "dkim/key.html"


def _health(domain: Domain) -> str:
    return reverse("domains:domain-detail", args=[domain.name]) + "#dns-health"


def _context(domain: Domain, form: DkimKeyForm, key: DkimKey | None) -> dict[str, object]:
    """The page's context: the form, and the current key with its size and record."""
    context: dict[str, object] = {"domain": domain, "form": form, "key": key}
    if key is not None:
        try:
            context["bits"] = records.key_bits(key.public_key, key.algorithm)
        except records.BadKey as error:
            # Stored keys were checked when set; say so rather than fail if one is not.
            context["key_problem"] = str(error)
        context["record"] = records.txt_record(key.selector, domain.name, key.algorithm,
                                               key.public_key)
    return context


@admin_required
@require_http_methods(["GET", "POST"])
def key(request: HttpRequest, name: str) -> HttpResponse:
    domain = domain_or_404(request, name)
    current = selectors.active_key(domain)
    form = DkimKeyForm(request.POST or None,
                       initial={"selector": current.selector if current else ""})
    if request.method == "POST" and form.is_valid():
        try:
            row = services.set_key(actor=actor(request), domain=domain,
                                   selector=form.cleaned_data["selector"],
                                   public_key=form.cleaned_data["public_key"])
        except ValidationError as error:
            show_errors(form, error)
        else:
            bits = records.key_bits(row.public_key, row.algorithm)
            messages.success(request, f"Set the DKIM key {row.selector}._domainkey.{domain.name} "
                                      f"({row.algorithm}, {bits} bits). Check now to see "
                                      f"whether its record is published.")
            if warning := records.weak_key_warning(row.algorithm, bits):
                messages.warning(request, warning)
            return redirect(_health(domain))
    return render(request, PAGE, _context(domain, form, current))


@admin_required
def remove(request: HttpRequest, name: str) -> HttpResponse:
    """POST only: the confirmation is the DKIM page's own "Remove the key" step."""
    # The domain first: outside the user's reach is a 404 whatever the method.
    domain = domain_or_404(request, name)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])

    def forget() -> str:
        services.remove_key(actor=actor(request), domain=domain)
        return f"Removed the DKIM key of {domain.name}; its DKIM check has no key to compare."

    return confirm_delete(request, PAGE,
                          _context(domain, DkimKeyForm(), selectors.active_key(domain)),
                          forget, _health(domain))
