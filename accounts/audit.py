"""Audit rows, written by services inside their transaction."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django.db import models

from accounts.models import AuditEntry

# Columns that never go into an audit row.
SECRET_FIELDS = frozenset({"password"})


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return value


def snapshot(obj: models.Model, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The object's concrete column values, minus secrets, as JSON-safe data."""
    result: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.name in SECRET_FIELDS or field.name in {"created", "modified"}:
            continue
        if fields is not None and field.name not in fields:
            continue
        result[field.attname] = _plain(getattr(obj, field.attname))
    return result


def entry(
    *,
    actor: str,
    action: str,
    obj: models.Model,
    domain: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """An unsaved row, for callers that write many at once with bulk_create."""
    return AuditEntry(
        actor=actor,
        action=action,
        object_type=obj._meta.model_name or "",
        object_id=obj.pk,
        object_repr=str(obj)[:254],
        domain=domain,
        before=before,
        after=after,
    )


def record(
    *,
    actor: str,
    action: str,
    obj: models.Model,
    domain: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Write one row now, inside the caller's transaction."""
    row = entry(actor=actor, action=action, obj=obj, domain=domain, before=before, after=after)
    row.save()
    return row
