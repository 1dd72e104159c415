"""Reads of the DKIM key registry, for the DKIM page, the command and dnscheck."""

from __future__ import annotations

from collections.abc import Iterable

from dkim.models import EXPECTED_STATES, DkimKey
from domains.models import Domain


def active_key(domain: Domain) -> DkimKey | None:
    """The key the domain signs with now, if one is set."""
    return (DkimKey.objects.filter(domain=domain, state=DkimKey.State.ACTIVE)
            .order_by("-activated", "-pk").first())


def expected_keys(domain_ids: Iterable[int]) -> dict[int, list[DkimKey]]:
    """Every key each domain should publish (active, then published), by domain id.

    One query whatever the number of domains; a domain without keys is absent.
    """
    keys: dict[int, list[DkimKey]] = {}
    rows = (DkimKey.objects.filter(domain_id__in=list(domain_ids), state__in=EXPECTED_STATES)
            .order_by("domain_id", "state", "selector", "pk"))
    for key in rows:
        keys.setdefault(key.domain_id, []).append(key)
    return keys
