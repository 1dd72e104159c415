"""Every write of the DKIM key registry: typed, keyword-only, one transaction, audited."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core import audit
from core.actor import Actor
from dkim import records
from dkim.models import DkimKey
from domains.models import Domain


def set_key(*, actor: Actor, domain: Domain, selector: str, public_key: str) -> DkimKey:
    """Make this the key `domain` signs with, published at `<selector>._domainkey`.

    Creates the domain's active key, or replaces it (selector, key and
    algorithm) when it has one: the panel sets the key by hand, one at a
    time, until rotation sets keys of its own. A published key already using
    the selector is refused: two keys cannot share one DNS name.
    """
    selector = selector.strip().lower()
    if not records.valid_selector(selector):
        raise ValidationError(f"{selector!r} is not a valid DKIM selector.")
    try:
        algorithm, key = records.normalise(public_key)
    except records.BadKey as error:
        raise ValidationError(f"That DKIM key cannot be used: {error}.") from None
    with transaction.atomic():
        locked = Domain.objects.select_for_update().get(pk=domain.pk)
        existing = (DkimKey.objects.filter(domain=locked, state=DkimKey.State.ACTIVE)
                    .order_by("-activated", "-pk").first())
        if DkimKey.objects.filter(domain=locked, state=DkimKey.State.PUBLISHED,
                                  selector=selector).exists():
            raise ValidationError(
                f"{selector}._domainkey.{locked.name} is another key's, published ahead "
                "of signing; choose another selector.")
        before = audit.snapshot(existing) if existing else None
        now = timezone.now()
        row = existing or DkimKey(domain=locked, state=DkimKey.State.ACTIVE, created=now)
        row.selector, row.public_key, row.algorithm = selector, key, algorithm
        row.activated = now
        row.save()
        audit.record(actor=actor, action="dkim.set", obj=row, domain=locked,
                     before=before, after=audit.snapshot(row))
    return row


def remove_key(*, actor: Actor, domain: Domain) -> None:
    """Forget the domain's active key: its DKIM check has nothing to compare until one is set."""
    with transaction.atomic():
        locked = Domain.objects.select_for_update().get(pk=domain.pk)
        row = (DkimKey.objects.filter(domain=locked, state=DkimKey.State.ACTIVE)
               .order_by("-activated", "-pk").first())
        if row is None:
            raise ValidationError(f"{domain.name} has no DKIM key set.")
        audit.record(actor=actor, action="dkim.remove", obj=row, domain=locked,
                     before=audit.snapshot(row))
        row.delete()
