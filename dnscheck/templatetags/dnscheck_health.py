"""The DNS health section, for pages of other apps that show it.

A template tag rather than a context value: the domain page includes the
section without domains importing dnscheck, which sits above it.
"""

from __future__ import annotations

from typing import Any

from django import template

from dnscheck import selectors, zone
from domains.models import Domain

register = template.Library()


@register.inclusion_tag("dnscheck/_health.html", takes_context=True)
def health_section(context: template.Context, domain: Domain) -> dict[str, Any]:
    # The page's own context (request, user, csrf token) reaches the section.
    values: dict[str, Any] = {str(key): value for key, value in context.flatten().items()}
    return {**values, "domain": domain, "health": selectors.health(domain)}


@register.inclusion_tag("dnscheck/_zone.html", takes_context=True)
def zone_section(context: template.Context, domain: Domain) -> dict[str, Any]:
    """The records to publish, always shown: computed from the settings, not from a check."""
    request = context["request"]
    found = zone.zone(domain, panel_host=request.get_host())
    aliases = [zone.alias_zone(a, panel_host=request.get_host())
               for a in domain.alias_domains.order_by("name")]
    return {"domain": domain, "zone": found, "zone_text": found.text(), "aliases": aliases}


@register.filter
def zone_host(record: zone.ZoneRecord, origin: str) -> str:
    return record.host(origin)
