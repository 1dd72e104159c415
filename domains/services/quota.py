"""The panel's copy of Dovecot's quota usage, for a panel on SQLite (quota_file)."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction

from core.actor import Actor
from domains import quota_file
from domains.models import QuotaUsage


def sync_quota_usage(*, actor: Actor, path: str | Path) -> int:
    """Copy Dovecot's quota file into `quota_usage`; returns the rows changed.

    Only rows that differ are written, a chunk per transaction, so the daemons'
    reads of the panel's file are held up for milliseconds at a time. No audit
    row: it mirrors what Dovecot counted (every few minutes), and no person
    changed anything. `actor` names who ran it, for the log of a caller.
    """
    del actor  # the copy records nothing of its own (above)
    changed = 0
    for chunk in quota_file.read(path):
        names = [row[0] for row in chunk]
        have = {q.username: q for q in QuotaUsage.objects.filter(username__in=names)}
        new, updated = [], []
        for username, used, messages in chunk:
            current = have.get(username)
            if current is None:
                new.append(QuotaUsage(username=username, bytes=used, messages=messages))
            elif (current.bytes, current.messages) != (used, messages):
                current.bytes, current.messages = used, messages
                updated.append(current)
        with transaction.atomic():
            QuotaUsage.objects.bulk_create(new)
            QuotaUsage.objects.bulk_update(updated, ["bytes", "messages"])
        changed += len(new) + len(updated)
    return changed
