"""The DNS health of a domain: its section (polled while a run is open), "Check now",
and the DKIM key the domain should publish, set by hand."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from core.http import actor, confirm_delete, is_htmx, show_errors
from dnscheck import dkim, selectors, services
from dnscheck.forms import DkimKeyForm
from dnscheck.models import DkimKey
from domains.access import admin_required, domain_or_404
from domains.models import Domain

SECTION = "dnscheck/_health.html"


@admin_required
def health(request: HttpRequest, name: str) -> HttpResponse:
    """The section alone for htmx (its polling asks for this), else a page of its own."""
    domain = domain_or_404(request, name)
    context = {"domain": domain, "health": selectors.health(domain)}
    return render(request, SECTION if is_htmx(request) else "dnscheck/health.html", context)


@admin_required
def check_now(request: HttpRequest, name: str) -> HttpResponse:
    # The domain first: outside the user's reach is a 404 whatever the method.
    domain = domain_or_404(request, name)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    run = services.request_check(actor=actor(request), domain=domain)
    if is_htmx(request):
        return render(request, SECTION, {"domain": domain, "health": selectors.health(domain)})
    if run.in_progress:
        messages.success(request, f"Checking the DNS of {domain.name}.")
    else:
        messages.success(request, f"Checked the DNS of {domain.name}.")
    return redirect(reverse("domains:domain-detail", args=[domain.name]) + "#dns-health")


# ---------------------------------------------------------------- the DKIM key


def _dkim_context(domain: Domain, form: DkimKeyForm, key: DkimKey | None
                  ) -> dict[str, object]:
    """The page's context: the form, and the current key with its size and record."""
    context: dict[str, object] = {"domain": domain, "form": form, "key": key}
    if key is not None:
        try:
            context["bits"] = dkim.key_bits(key.public_key, key.algorithm)
        except dkim.BadKey as error:
            # Stored keys were checked when set; say so rather than fail if one is not.
            context["key_problem"] = str(error)
        context["record"] = dkim.txt_record(key.selector, domain.name, key.algorithm,
                                            key.public_key)
    return context


@admin_required
@require_http_methods(["GET", "POST"])
def dkim_key(request: HttpRequest, name: str) -> HttpResponse:
    domain = domain_or_404(request, name)
    current = DkimKey.objects.filter(domain=domain).first()
    form = DkimKeyForm(request.POST or None,
                       initial={"selector": current.selector if current else ""})
    if request.method == "POST" and form.is_valid():
        try:
            key = services.set_dkim_key(actor=actor(request), domain=domain,
                                        selector=form.cleaned_data["selector"],
                                        public_key=form.cleaned_data["public_key"])
        except ValidationError as error:
            show_errors(form, error)
        else:
            bits = dkim.key_bits(key.public_key, key.algorithm)
            messages.success(request, f"Set the DKIM key {key.selector}._domainkey.{domain.name} "
                                      f"({key.algorithm}, {bits} bits). Check now to see "
                                      f"whether its record is published.")
            if warning := dkim.weak_key_warning(key.algorithm, bits):
                messages.warning(request, warning)
            return redirect(reverse("domains:domain-detail", args=[domain.name]) + "#dns-health")
    return render(request, "dnscheck/dkim.html", _dkim_context(domain, form, current))


@admin_required
def dkim_key_remove(request: HttpRequest, name: str) -> HttpResponse:
    """POST only: the confirmation is the DKIM page's own "Remove the key" step."""
    # The domain first: outside the user's reach is a 404 whatever the method.
    domain = domain_or_404(request, name)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])

    def remove() -> str:
        services.remove_dkim_key(actor=actor(request), domain=domain)
        return f"Removed the DKIM key of {domain.name}; its DKIM check has no key to compare."

    current = DkimKey.objects.filter(domain=domain).first()
    return confirm_delete(request, "dnscheck/dkim.html",
                          _dkim_context(domain, DkimKeyForm(), current), remove,
                          reverse("domains:domain-detail", args=[domain.name]) + "#dns-health")
