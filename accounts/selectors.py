"""Reads for account pages."""

from __future__ import annotations

from domains import search
from domains.models import Domain

# Suggestions the domain picker offers at once: enough to pick from, few
# enough that each keystroke costs one short index range at any size.
DOMAIN_SUGGESTIONS = 20


def domain_suggestions(typed: str) -> tuple[str, list[str]]:
    """Names for a comma-separated list being typed: the part before its last name, and
    at most DOMAIN_SUGGESTIONS domain names starting with that last name, in order."""
    head, comma, last = typed[:2000].rpartition(",")
    term = search.domain_term(last)[:253]
    if not term:
        return "", []
    names = list(Domain.objects.filter(name__prefix=term).order_by("name")
                 .values_list("name", flat=True)[:DOMAIN_SUGGESTIONS])
    return (f"{head.strip()}, " if comma and head.strip() else ""), names
