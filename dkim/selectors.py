"""Reads of the DKIM key registry, for the DKIM page, the command, the tasks and dnscheck."""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from django.db.models import QuerySet
from django.utils import timezone

from dkim.models import EXPECTED_STATES, DkimKey
from domains.models import Domain

State = DkimKey.State
# A key the host has not made this long after it was asked is asked again.
GENERATION_RETRY_AFTER = datetime.timedelta(minutes=5)


def active_key(domain: Domain) -> DkimKey | None:
    """The key the domain signs with now (its RSA one first), if one is set."""
    return (DkimKey.objects.filter(domain=domain, state=State.ACTIVE)
            .order_by("-algorithm", "-activated", "-pk").first())


def domain_keys(domain: Domain) -> list[DkimKey]:
    """Every key of the domain, live ones first (newest first), then the gone ones."""
    order = {s: n for n, s in enumerate((State.ACTIVE, State.PUBLISHED, State.PENDING,
                                         State.RETIRING, State.REVOKED, State.GONE))}
    keys = list(DkimKey.objects.filter(domain=domain).select_related("domain"))
    return sorted(keys, key=lambda k: (order.get(State(k.state), 9), -k.pk))


def key_by_selector(domain: Domain, selector: str) -> DkimKey | None:
    return (DkimKey.objects.filter(domain=domain, selector=selector.strip().lower())
            .exclude(state=State.GONE).select_related("domain").first())


def expected_keys(domain_ids: Iterable[int]) -> dict[int, list[DkimKey]]:
    """Every key each domain should publish, by domain id: pending (once made),
    published, active and retiring.

    One query whatever the number of domains; a domain without keys is absent.
    """
    keys: dict[int, list[DkimKey]] = {}
    rows = (DkimKey.objects.filter(domain_id__in=list(domain_ids), state__in=EXPECTED_STATES)
            .exclude(public_key="").order_by("domain_id", "state", "selector", "pk"))
    for key in rows:
        keys.setdefault(key.domain_id, []).append(key)
    return keys


def keys_to_check(domain_ids: Iterable[int] | None = None) -> QuerySet[DkimKey]:
    """Keys the publish check looks for: pending ones with a public key, and revoked ones."""
    rows = (DkimKey.objects.filter(state__in=(State.PENDING, State.REVOKED))
            .exclude(state=State.PENDING, public_key="")
            .select_related("domain").order_by("domain__name", "pk"))
    if domain_ids is not None:
        rows = rows.filter(domain_id__in=list(domain_ids))
    return rows


def keys_awaiting_generation(now: datetime.datetime | None = None) -> QuerySet[DkimKey]:
    """Pending keys the mail host was asked to make a while ago and has not."""
    cutoff = (now or timezone.now()) - GENERATION_RETRY_AFTER
    return DkimKey.objects.filter(state=State.PENDING, public_key="", external=False,
                                  created__lt=cutoff)
