"""Maildirs left on disk by deleted mailboxes: claimed for reuse, settled when a
domain of the same name comes back, purged (now, or after the grace period)
by the mail host's agent, or recorded as removed from the mail host."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import audit, jobs
from core.actor import BEAT, Actor
from core.models import AuditEntry
from domains.models import Alias, Domain, KeptMaildir, Mailbox
from domains.services._common import ASK_EACH_MAX, _in_chunks, maildir_path
from domains.validators import domain_of, normalize_address
from mailhost import apply, privileged
from mailhost.models import MailHost

REMOVE_TASK = "domains.remove_kept_maildir"

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
    if len(addresses) > ASK_EACH_MAX:  # as _taken_addresses: read them all
        kept.update(KeptMaildir.objects.filter(domain_ref=domain.pk, removed_at=None,
                                               reused_at=None).values_list("address", flat=True))
        return kept & addresses
    for part in _in_chunks(sorted(addresses)):
        kept.update(KeptMaildir.objects.filter(
            address__in=part, domain_ref=domain.pk, removed_at=None, reused_at=None,
        ).values_list("address", flat=True))
    return kept



# ---------------------------------------------------------------- purge and removal


def purge_kept_maildir(*, actor: Actor, kept: KeptMaildir) -> KeptMaildir:
    """Ask the mail host's agent to remove this kept Maildir now.

    The row stays open until the agent says the directory is gone; asking
    again (after a failure) asks again. The task gets the row's id and the
    path recorded in it, never a path from anyone's input.
    """
    with transaction.atomic():
        locked = _lock_open(kept)
        _request_removal(actor, [locked], MailHost.current(), audited=[locked])
    return locked


def purge_expired_kept_maildirs(*, actor: Actor = BEAT) -> int:
    """Hand every open kept Maildir past the grace period to the agent, and again
    every one asked for before and still open (a removal that failed or was lost).

    Idempotent: a row handed over twice is removed once (the agent re-reads
    and locks it). One audit row for each newly asked-for Maildir. Returns
    the number handed over.
    """
    cutoff = timezone.now() - datetime.timedelta(days=settings.MAILADMIN_KEPT_MAILDIR_DAYS)
    with transaction.atomic():
        rows = list(KeptMaildir.objects.select_for_update()
                    .filter(removed_at=None, reused_at=None)
                    .filter(Q(deleted_at__lte=cutoff) | Q(purge_requested_at__isnull=False))
                    .order_by("pk"))
        if rows:
            _request_removal(actor, rows, MailHost.current(),
                             audited=[row for row in rows if row.purge_requested_at is None])
    return len(rows)


def remove_kept_maildir(*, kept_id: int, path: str) -> bool:
    """The agent's side: remove the directory of kept Maildir `kept_id` through the
    root helper (as the vmail user), then record it as removed. True if removed.

    Only a row that is open, asked for, and records this very `path` is
    removed; anything else is skipped (reused or forgotten meanwhile, or a
    stale message). The row stays locked while the helper runs, so a restore
    of the same Maildir waits and then finds it removed, never half-removed.
    A refusal or failure is recorded on the row and audited; the row stays
    open and the next sweep tries again.
    """
    host = MailHost.current()
    with transaction.atomic():
        row = (KeptMaildir.objects.select_for_update()
               .filter(pk=kept_id, path=path, removed_at=None, reused_at=None,
                       purge_requested_at__isnull=False).first())
        if row is None:
            return False
        try:
            privileged.run_helper("remove-maildir", row.path)
        except privileged.HelperError as failure:
            row.removal_error = str(failure)[:500] or "failed"
            row.save(update_fields=["removal_error"])
            audit.record(actor=apply.agent(host), action="mailbox.maildir_remove_failed",
                         obj=row, domain=domain_of(row.address),
                         after={"path": row.path, "error": row.removal_error})
            return False
        _mark_kept_removed(apply.agent(host), [row], domain_of(row.address))
    return True


def _lock_open(kept: KeptMaildir) -> KeptMaildir:
    """The row, locked, if it is still open; else why not."""
    locked = KeptMaildir.objects.select_for_update().filter(pk=kept.pk).first()
    if locked is None:
        raise ValidationError(f"The kept Maildir of {kept.address} is no longer recorded.")
    if locked.reused_at is not None:
        raise ValidationError(f"The kept Maildir of {kept.address} was given to a mailbox "
                              "again.")
    if locked.removed_at is not None:
        raise ValidationError(f"The kept Maildir of {kept.address} is already removed.")
    return locked


def _request_removal(actor: Actor, rows: list[KeptMaildir], host: MailHost, *,
                     audited: list[KeptMaildir]) -> None:
    """Mark `audited` as asked for now (audited for superadmins only, under the
    domain's name: the address is a previous tenant's) and send each of `rows`
    to the host's agent. A failure stays on its row until the next outcome."""
    now = timezone.now()
    KeptMaildir.objects.filter(pk__in=[row.pk for row in audited]).update(
        purge_requested_at=now)
    AuditEntry.objects.bulk_create([
        audit.entry(actor=actor, action="mailbox.maildir_purge", obj=row,
                    domain=domain_of(row.address),
                    after={"path": row.path, "deleted_at": row.deleted_at.isoformat()})
        for row in audited])
    for row in audited:
        row.purge_requested_at = now
    for row in rows:
        jobs.enqueue_on_commit(REMOVE_TASK, row.pk, row.path, queue=host.queue)


def _restorable(kept: KeptMaildir) -> tuple[KeptMaildir, Domain]:
    """For restore_kept_maildir, in its transaction: the row and its domain, both
    locked (the domain first, as create_mailbox locks them), or why not."""
    domain = (None if kept.domain_ref is None else
              Domain.objects.select_for_update().filter(pk=kept.domain_ref).first())
    locked = _lock_open(kept)
    address = locked.address
    if domain is None or domain.name != domain_of(address):
        raise ValidationError(f"The domain of {address} is gone: create it again first "
                              "(keeping its kept Maildirs: reserve).")
    if not domain.active:
        raise ValidationError(f"{domain.name} is disabled: enable it before restoring "
                              f"{address}.")
    if Mailbox.objects.filter(email=address).exists() or Alias.objects.filter(
            source=address).exists():
        raise ValidationError(f"{address} is in use again: delete that mailbox or alias "
                              "first, or purge this Maildir.")
    newer = (KeptMaildir.objects.filter(address=address, domain_ref=domain.pk, removed_at=None,
                                        reused_at=None).order_by("-deleted_at").first())
    if newer is not None and newer.pk != locked.pk:
        raise ValidationError(f"A later kept Maildir of {address} exists ({newer.path}): "
                              "restore that one, or purge it first.")
    if maildir_path(address) != locked.path:
        raise ValidationError(f"{address} would now live in {maildir_path(address)}, not in "
                              f"{locked.path} (the mail host's vmail directory changed): move "
                              "the directory on the mail host first.")
    return locked, domain
