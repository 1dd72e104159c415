"""Maildirs left on disk by deleted mailboxes: claimed for reuse, settled when a
domain of the same name comes back, or recorded as removed from the mail host."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core import audit
from core.actor import Actor
from core.models import AuditEntry
from domains.models import Domain, KeptMaildir
from domains.services._common import _in_chunks
from domains.validators import domain_of, normalize_address

KEPT_MAILDIR_CHOICES = ("reserve", "remove")


def forget_kept_maildir(*, actor: Actor, address: str) -> list[str]:
    """Record that the kept Maildir of `address` is gone from the mail host.

    The address can then become a mailbox for a new person. Nothing on disk
    is touched here: whoever removed the directory says so. The audit row
    carries the domain's name only (superadmins see it): the path belongs to
    a previous mailbox, perhaps of a previous domain of that name.
    """
    target = normalize_address(address)
    with transaction.atomic():
        rows = list(KeptMaildir.objects.select_for_update()
                    .filter(address=target, removed_at=None, reused_at=None))
        if not rows:
            raise ValidationError(f"No kept Maildir is recorded for {target}.")
        _mark_kept_removed(actor, rows, domain_of(target))
    return [row.path for row in rows]


def _settle_earlier_kept_maildirs(actor: Actor, domain: Domain, rows: list[KeptMaildir],
                                  choice: str) -> None:
    """Reserve or remove another domain's kept Maildirs; audited for superadmins only
    (the domain's name, not the domain: the addresses are a previous tenant's)."""
    ids = [row.pk for row in rows]
    if choice == "reserve":
        KeptMaildir.objects.filter(pk__in=ids).update(domain_ref=domain.pk)
        audit.record(actor=actor, action="mailbox.maildirs_reserved", obj=domain,
                     domain=domain.name,
                     after={"addresses": sorted(row.address for row in rows)})
        return
    _mark_kept_removed(actor, rows, domain.name)


def _mark_kept_removed(actor: Actor, rows: list[KeptMaildir], domain_name: str) -> None:
    """Record these kept Maildirs as gone from the mail host, one audit row each
    under the domain's name only (superadmins see them)."""
    KeptMaildir.objects.filter(pk__in=[row.pk for row in rows]).update(removed_at=timezone.now())
    AuditEntry.objects.bulk_create([
        audit.entry(actor=actor, action="mailbox.maildir_removed", obj=row, domain=domain_name,
                    after={"path": row.path, "deleted_at": row.deleted_at.isoformat()})
        for row in rows])


def _claim_kept_maildir(address: str, domain: Domain, *, reuse: bool) -> str:
    """'' if `domain` keeps no Maildir for `address`; else its path, marked reused, if `reuse`."""
    rows = list(KeptMaildir.objects.select_for_update()
                .filter(address=address, domain_ref=domain.pk, removed_at=None, reused_at=None)
                .order_by("-deleted_at"))
    if not rows:
        return ""
    if not reuse:
        raise ValidationError(KeptMaildir.refusal(address), code="maildir_kept")
    KeptMaildir.objects.filter(pk__in=[row.pk for row in rows]).update(reused_at=timezone.now())
    return rows[0].path


def _kept_addresses(addresses: set[str], domain: Domain) -> set[str]:
    """Those of `addresses` whose Maildir `domain` keeps (never an earlier domain's:
    create_domain settled those)."""
    kept: set[str] = set()
    for part in _in_chunks(sorted(addresses)):
        kept.update(KeptMaildir.objects.filter(
            address__in=part, domain_ref=domain.pk, removed_at=None, reused_at=None,
        ).values_list("address", flat=True))
    return kept
