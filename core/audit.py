"""Audit rows, written by services inside their transaction."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from django.db import models
from django.utils import timezone

from core import bulk
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


def snapshot_columns(model: type[models.Model]) -> list[str]:
    """The attributes snapshot() keeps of a `model` row, in its order."""
    return [field.attname for field in model._meta.concrete_fields
            if field.name not in SECRET_FIELDS and field.name not in {"created", "modified"}]


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


def snapshot_of(columns: Sequence[str], values: Iterable[Any]) -> dict[str, Any]:
    """snapshot() of a row read as plain values (values_list of `columns`)."""
    return {column: _plain(value) for column, value in zip(columns, values, strict=True)}


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


# The columns of EntryRows' tuples: the row's own, then those all its rows share.
_OWN = ("parent", "object_id", "object_repr", "before", "after")
_SHARED = ("at", "actor", "action", "object_type", "domain", "domain_ref")
# How a snapshot's JSON begins while its object's id is not known yet.
_NO_ID = '{"id": null'


class EntryRows:
    """Rows of one action on many objects of one model, made before the
    transaction as database values and written in it with executemany: what
    entry() and bulk_create would write, without a model instance a row (see
    core.bulk for why).

    An object inserted in the same transaction has no id before its insert:
    add it with `object_id=None` (a snapshot in `after` with its "id" None, the
    first key as snapshot() orders it, gets the id too) and give write() the
    ids, by object_repr.
    """

    def __init__(self, *, actor: Actor, action: str, model: type[models.Model],
                 domain: AuditDomain | str = "") -> None:
        name, ref = (domain, None) if isinstance(domain, str) else (domain.name, domain.pk)
        self._shared = (str(actor)[:254], action, model._meta.model_name or "", name, ref)
        # (object_id, object_repr, before, after, whether `after` waits for the id)
        self._rows: list[tuple[int | None, str, Any, Any, bool]] = []
        self._before = bulk.db_converter(AuditEntry, "before")
        self._after = bulk.db_converter(AuditEntry, "after")

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, *, object_id: int | None, object_repr: str,
            before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
        after_value = self._after(after)
        waits = (object_id is None and isinstance(after_value, str)
                 and after_value.startswith(_NO_ID))
        if waits:
            after_value = after_value[len(_NO_ID):]
        self._rows.append((object_id, object_repr[:254], self._before(before), after_value,
                           waits))

    def write(self, *, parent: AuditEntry | None = None, ids: Mapping[str, int] | None = None,
              batch_size: int = 2000) -> int:
        """Write the rows now (inside the caller's transaction), folded under `parent`."""
        shared = (bulk.db_value(AuditEntry, "at", timezone.now()), *self._shared)
        parent_id = parent.pk if parent is not None else None

        def rows() -> Iterable[tuple[Any, ...]]:
            for object_id, object_repr, before, after, waits in self._rows:
                if object_id is None:
                    assert ids is not None, "rows added without their id need write(ids=)"
                    object_id = ids[object_repr]
                if waits:
                    after = f'{{"id": {object_id}{after}'
                yield (parent_id, object_id, object_repr, before, after, *shared)

        return bulk.insert_rows(AuditEntry, _OWN + _SHARED, rows(), batch_size=batch_size)
