"""Audit rows, written by services inside their transaction."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any, Protocol

from django.db import models

from core.actor import Actor
from core.models import AuditEntry

# Columns that never go into an audit row.
SECRET_FIELDS = frozenset({"password"})


class AuditDomain(Protocol):
    """What a row keeps of its domain (a domains.models.Domain)."""

    @property
    def pk(self) -> Any: ...

    @property
    def name(self) -> str: ...


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
    actor: Actor,
    action: str,
    obj: models.Model,
    domain: AuditDomain | str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    parent: AuditEntry | None = None,
) -> AuditEntry:
    """An unsaved row, for callers that write many at once with bulk_create.

    `parent`: the row of the event this one is part of (an import's one
    `domain.import` row); the log shows the event and folds its rows under it.

    Pass the Domain itself: the row keeps its name for display and its id
    for scoping. A name alone (a string) leaves the id empty, and such a row
    is shown to superadmins only, since a later domain of the same name must
    not read it.
    """
    name, ref = (domain, None) if isinstance(domain, str) else (domain.name, domain.pk)
    return AuditEntry(
        actor=str(actor)[:254],
        action=action,
        object_type=obj._meta.model_name or "",
        object_id=obj.pk,
        object_repr=str(obj)[:254],
        domain=name,
        domain_ref=ref,
        before=before,
        after=after,
        parent=parent.pk if parent is not None else None,
    )


def record(
    *,
    actor: Actor,
    action: str,
    obj: models.Model,
    domain: AuditDomain | str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Write one row now, inside the caller's transaction."""
    row = entry(actor=actor, action=action, obj=obj, domain=domain, before=before, after=after)
    row.save()
    return row
