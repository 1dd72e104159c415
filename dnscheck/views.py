"""The DNS health of a domain: its section (polled while a run is open), "Check now",
and the records to publish as a zone file."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse

from core import jobs
from core.http import actor, is_htmx
from dnscheck import selectors, services, zone
from domains.access import admin_required, alias_domain_or_404, domain_or_404

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
    try:
        run = services.request_check(actor=actor(request), domain=domain)
    except jobs.QueueDown as down:
        # The run is failed with the reason: the section shows it, in place of a new run.
        if is_htmx(request):
            return render(request, SECTION, {"domain": domain, "health": selectors.health(domain)})
        messages.error(request, str(down))
        return redirect(reverse("domains:domain-detail", args=[domain.name]) + "#dns-health")
    if is_htmx(request):
        return render(request, SECTION, {"domain": domain, "health": selectors.health(domain)})
    if run.in_progress:
        messages.success(request, f"Checking the DNS of {domain.name}.")
    else:
        messages.success(request, f"Checked the DNS of {domain.name}.")
    return redirect(reverse("domains:domain-detail", args=[domain.name]) + "#dns-health")


@admin_required
def zone_file(request: HttpRequest, name: str) -> HttpResponse:
    """The records to publish as a zone-file fragment, downloaded as <domain>.zone."""
    domain = domain_or_404(request, name)
    return _zone_download(zone.zone(domain, panel_host=request.get_host()))


@admin_required
def alias_zone_file(request: HttpRequest, alias: str) -> HttpResponse:
    """An alias domain's records to publish (its target's admins and superadmins)."""
    alias_domain = alias_domain_or_404(request, alias)
    return _zone_download(zone.alias_zone(alias_domain, panel_host=request.get_host()))


def _zone_download(found: zone.Zone) -> HttpResponse:
    response = HttpResponse(found.text(), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{found.domain}.zone"'
    return response
