"""Bulk imports of mailboxes and aliases (the CSV import's writes), all rows or
none, and their dry runs.

The *_problems functions are dry runs: the checks of the matching import,
row by row, without a lock and without writing; the import re-checks under
the lock. The limits are the same checks (services.limits) in both.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from core import audit, bulk
from core.actor import Actor
from domains import passwords
from domains.address_changes import addresses_changed
from domains.models import Alias, Domain, KeptMaildir, Mailbox
from domains.selectors import domain_usage
from domains.services._common import (
    NAME_MAX,
    _lock_domain,
    _taken_addresses,
    _text,
)
from domains.services.destinations import (
    _parse_destinations,
    _unknown_local_destinations,
    _unknown_message,
)
from domains.services.kept_maildirs import _kept_addresses
from domains.services.limits import (
    _check_alias_count,
    _check_mailbox_count,
    _check_mailbox_limits,
    _check_quota,
)
from domains.validators import (
    domain_of,
    normalize_address,
    normalize_hosted_address,
    parse_size,
    split_address,
)


@dataclass(frozen=True)
class MailboxImport:
    email: str
    password_hash: str
    name: str = ""
    quota: int | str | None = None


@dataclass(frozen=True)
class AliasImport:
    source: str
    destinations: str | tuple[str, ...]
    active: bool = True


# The columns of a prepared mailbox row (core.bulk.insert_rows checks they are all).
MAILBOX_COLUMNS = ("domain_id", "email", "password", "name", "quota", "active", "created",
                   "modified", "password_changed")
ALIAS_COLUMNS = ("domain_id", "source", "destinations", "active", "created", "modified")


@dataclass(frozen=True)
class PreparedImport:
    """An import checked and turned into SQL parameters before its transaction
    (prepare_mailbox_import, prepare_alias_import), for write_import to write.

    Why two steps: on SQLite every other panel write waits while a write
    transaction is open (core.bulk), and most of an import's time is Python:
    parsing, checking, building the rows and their audit rows. All of that is
    done here without a lock, the checks against the tables too (so a refused
    file never takes it); write_import repeats under the lock only the checks
    of what may have changed meanwhile and runs the prepared INSERTs.
    """

    kind: str  # "mailboxes" or "aliases"
    actor: Actor
    domain: Domain
    addresses: list[str]  # in file order
    rows: list[tuple[Any, ...]]  # MAILBOX_COLUMNS or ALIAS_COLUMNS, in file order
    created: audit.EntryRows  # mailbox.import / alias.import, one a row
    disabled: audit.EntryRows | None = None  # mailbox.disable, under the same event
    quota: int = 0
    any_unlimited: bool = False
    targets: frozenset[str] = frozenset()  # aliases: every destination
    checked_domains: Collection[str] | None = None  # aliases: the actor's reach
    now: datetime.datetime = field(default_factory=timezone.now)


# ---------------------------------------------------------------- mailboxes


def import_mailboxes(
    *, actor: Actor, domain: Domain, rows: Sequence[MailboxImport], batch_size: int = 2000
) -> list[Mailbox]:
    """Create many mailboxes with pre-hashed passwords: all of them or none.

    Validation runs over every row first and reports every bad row at once.
    """
    return import_mailboxes_with_state(actor=actor, domain=domain, rows=rows,
                                       batch_size=batch_size)


def import_mailboxes_with_state(
    *, actor: Actor, domain: Domain, rows: Sequence[MailboxImport], inactive: Iterable[str] = (),
    batch_size: int = 2000,
) -> list[Mailbox]:
    """import_mailboxes, with the `inactive` addresses among them disabled: all or nothing."""
    prepared = prepare_mailbox_import(actor=actor, domain=domain, rows=rows, inactive=inactive)
    ids = _write(prepared, batch_size)
    return _mailboxes(prepared, ids)


def prepare_mailbox_import(
    *, actor: Actor, domain: Domain, rows: Sequence[MailboxImport], inactive: Iterable[str] = (),
) -> PreparedImport:
    """The checks and the rows of a mailbox import (see PreparedImport); call it
    outside any transaction. Every bad row is reported at once. `inactive`:
    addresses among them created disabled (audited as created, then disabled)."""
    switched_off = {normalize_address(address) for address in inactive}
    errors: list[str] = []
    seen: set[str] = set()
    addresses: list[str] = []
    values: list[tuple[Any, ...]] = []
    now = timezone.now()
    at = bulk.db_value(Mailbox, "created", now)
    columns = audit.snapshot_columns(Mailbox)
    created = audit.EntryRows(actor=actor, action="mailbox.import", model=Mailbox,
                              domain=domain)
    disabled = audit.EntryRows(actor=actor, action="mailbox.disable", model=Mailbox,
                               domain=domain)
    quota_total, any_unlimited = 0, False
    for number, row in enumerate(rows, start=1):
        try:
            local, domain_part = split_address(normalize_hosted_address(row.email, mailbox=True))
            address = f"{local}@{domain_part}"
            if domain_part != domain.name:
                raise ValidationError(f"{address} is not in {domain.name}.")
            if address in seen:
                raise ValidationError(f"{address} appears twice.")
            seen.add(address)
            password = passwords.normalize_hash(row.password_hash)
            name = _text(row.name, NAME_MAX, "The name")
            quota = domain.default_quota if row.quota is None else parse_size(row.quota)
        except ValidationError as exc:
            errors.append(f"row {number}: {' '.join(exc.messages)}")
            continue
        if errors:
            continue  # the import is refused: only the rest of its errors matter now
        active = address not in switched_off
        addresses.append(address)
        values.append((domain.pk, address, password, name, quota, active, at, at, at))
        quota_total += quota
        any_unlimited = any_unlimited or quota == 0
        # Created active, then disabled: the audit says both, as it always has.
        snapshot = {"id": None, "domain_id": domain.pk, "email": address, "name": name,
                    "quota": quota, "active": True, "password_changed": now}
        created.add(object_id=None, object_repr=address,
                    after=audit.snapshot_of(columns, (snapshot[c] for c in columns)))
        if not active:
            disabled.add(object_id=None, object_repr=address, before={"active": True},
                         after={"active": False})
    if errors:
        raise ValidationError(errors)
    prepared = PreparedImport(kind="mailboxes", domain=domain, addresses=addresses,
                              rows=values, created=created, disabled=disabled,
                              quota=quota_total, any_unlimited=any_unlimited, now=now,
                              actor=actor)
    if addresses:
        # Without the lock: a file refused now never takes it. write_import asks again.
        _check_tables(prepared, _current(domain))
    return prepared


def write_import(*, prepared: PreparedImport, batch_size: int = 2000) -> int:
    """Write a prepared import, all of it or none, in one short transaction (or in
    the caller's); the number of rows created.

    Under the domain's lock it asks again only what may have changed since the
    preparation: an address taken meanwhile, the limits, a kept Maildir, an
    alias's destination deleted. Any of them refuses the whole import.
    """
    return len(_write(prepared, batch_size))


def _write(prepared: PreparedImport, batch_size: int) -> dict[str, int]:
    """write_import; the ids of the rows created, by address."""
    if not prepared.rows:
        return {}
    model: type[Mailbox | Alias] = Mailbox if prepared.kind == "mailboxes" else Alias
    key = "email" if model is Mailbox else "source"
    columns = MAILBOX_COLUMNS if model is Mailbox else ALIAS_COLUMNS
    with transaction.atomic():
        locked = _lock_domain(prepared.domain)
        _check_tables(prepared, locked)
        # The new rows are the domain's above its highest id now: its lock keeps
        # every other insert into it out until this commits.
        highest = model._default_manager.filter(domain=locked).aggregate(m=Max("pk"))["m"] or 0
        bulk.insert_rows(model, columns, prepared.rows, batch_size=batch_size)
        ids: dict[str, int] = dict(model._default_manager.filter(domain=locked, pk__gt=highest)
                                   .values_list(key, "pk"))
        if len(ids) != len(prepared.rows):  # cannot happen while the lock holds
            raise RuntimeError(f"{len(prepared.rows)} rows imported, {len(ids)} found")
        after = {"kind": prepared.kind, "rows": len(prepared.rows), "created": len(ids)}
        if prepared.disabled:
            after["disabled"] = len(prepared.disabled)
        event = audit.record(actor=prepared.actor, action="domain.import", obj=locked,
                             domain=locked, after=after)
        prepared.created.write(parent=event, ids=ids, batch_size=batch_size)
        if prepared.disabled:
            prepared.disabled.write(parent=event, ids=ids, batch_size=batch_size)
        if model is Alias:
            addresses_changed(mailboxes=prepared.targets)
    return ids


def _check_tables(prepared: PreparedImport, domain: Domain) -> None:
    """What the tables may refuse of an import (`domain` as read now): an address
    taken, a kept Maildir, a limit; for aliases, a local destination unknown."""
    addresses = set(prepared.addresses)
    taken = _taken_addresses(addresses, domain)
    if taken:
        raise ValidationError([f"{address} already exists." for address in sorted(taken)])
    usage = domain_usage(domain)
    if prepared.kind == "mailboxes":
        kept = _kept_addresses(addresses, domain)
        if kept:
            raise ValidationError([KeptMaildir.refusal(address) for address in sorted(kept)])
        _check_mailbox_limits(domain, usage, adding=len(addresses), quota=prepared.quota,
                              any_unlimited=prepared.any_unlimited)
        return
    unknown = _unknown_local_destinations(set(prepared.targets), known=addresses,
                                          source_domain=domain.name,
                                          checked_domains=prepared.checked_domains)
    if unknown:
        raise ValidationError(_unknown_message(sorted(unknown)))
    _check_alias_count(domain, usage.aliases, adding=len(addresses))


def _current(domain: Domain) -> Domain:
    """The domain as it is now (its limits), without a lock."""
    current = Domain.objects.filter(pk=domain.pk).first()
    if current is None:
        raise ValidationError(f"The domain {domain.name} no longer exists.")
    return current


def _mailboxes(prepared: PreparedImport, ids: dict[str, int]) -> list[Mailbox]:
    """The imported mailboxes as model instances, in file order (after the commit)."""
    result = []
    for domain_id, email, password, name, quota, active, *_ in prepared.rows:
        mailbox = Mailbox(id=ids[email], domain_id=domain_id, email=email, password=password,
                          name=name, quota=quota, active=active, created=prepared.now,
                          modified=prepared.now, password_changed=prepared.now)
        mailbox.domain = prepared.domain
        mailbox._state.adding, mailbox._state.db = False, Mailbox.objects.db
        result.append(mailbox)
    return result


def mailbox_import_problems(
    *, domain: Domain, rows: Sequence[MailboxImport]
) -> list[list[str]]:
    """What import_mailboxes would refuse, for each row (same order); writes nothing.

    An empty `password_hash` is not checked: the caller hashes a plaintext
    password for that row later.
    """
    problems: list[list[str]] = [[] for _ in rows]
    seen: set[str] = set()
    candidates: list[tuple[int, str, int | None]] = []
    for index, row in enumerate(rows):
        errors = problems[index]
        address = _import_address(row.email, domain, seen, errors, mailbox=True)
        quota: int | None = domain.default_quota
        try:
            _text(row.name, NAME_MAX, "The name")
        except ValidationError as exc:
            errors.extend(exc.messages)
        if row.quota is not None:
            try:
                quota = parse_size(row.quota)
            except ValidationError as exc:
                errors.extend(exc.messages)
                quota = None
        if row.password_hash:
            try:
                passwords.normalize_hash(row.password_hash)
            except ValidationError as exc:
                errors.extend(exc.messages)
        if address is not None:
            candidates.append((index, address, quota))
    taken = _taken_addresses({address for _, address, _ in candidates}, domain)
    kept = _kept_addresses({address for _, address, _ in candidates}, domain)
    usage = domain_usage(domain)
    adding, allocated = 0, usage.quota_total
    for index, address, quota in candidates:
        if address in taken:
            problems[index].append(f"{address} already exists.")
            continue
        if address in kept:
            problems[index].append(KeptMaildir.refusal(address))
            continue
        # Every row counts toward the limits, refused or not: the file is
        # imported whole, so the preview shows where it overflows.
        adding += 1
        try:
            _check_mailbox_count(domain, usage.mailboxes, adding=adding, row=True)
        except ValidationError as exc:
            problems[index].extend(exc.messages)
            continue
        if quota is None:
            continue
        try:
            _check_quota(domain, allocated, quota, any_unlimited=quota == 0)
        except ValidationError as exc:
            problems[index].extend(exc.messages)
        allocated += quota
    return problems


# ---------------------------------------------------------------- aliases


def import_aliases(
    *, actor: Actor, domain: Domain, rows: Sequence[AliasImport], batch_size: int = 2000,
    checked_domains: Collection[str] | None,
) -> list[Alias]:
    """Create many aliases: all of them or none, like import_mailboxes.

    `checked_domains`: the actor's reach, as for create_alias (see _is_checked).

    A local destination must be a mailbox, an alias, or a source in the same
    import. Validation runs over every row first and reports every bad row.
    """
    prepared = prepare_alias_import(actor=actor, domain=domain, rows=rows,
                                    checked_domains=checked_domains)
    ids = _write(prepared, batch_size)
    result = []
    for domain_id, source, destinations, active, *_ in prepared.rows:
        alias = Alias(id=ids[source], domain_id=domain_id, source=source,
                      destinations=destinations, active=active, created=prepared.now,
                      modified=prepared.now)
        alias.domain = prepared.domain
        alias._state.adding, alias._state.db = False, Alias.objects.db
        result.append(alias)
    return result


def prepare_alias_import(
    *, actor: Actor, domain: Domain, rows: Sequence[AliasImport],
    checked_domains: Collection[str] | None,
) -> PreparedImport:
    """The checks and the rows of an alias import (see PreparedImport), as
    import_aliases makes them; call it outside any transaction."""
    errors: list[str] = []
    seen: set[str] = set()
    addresses: list[str] = []
    values: list[tuple[Any, ...]] = []
    all_targets: set[str] = set()
    now = timezone.now()
    at = bulk.db_value(Alias, "created", now)
    columns = audit.snapshot_columns(Alias)
    created = audit.EntryRows(actor=actor, action="alias.import", model=Alias, domain=domain)
    for number, row in enumerate(rows, start=1):
        problems: list[str] = []
        address = _import_address(row.source, domain, seen, problems, allow_catchall=True)
        try:
            targets = _parse_destinations(row.destinations)
        except ValidationError as exc:
            problems.extend(exc.messages)
            targets = []
        if address is not None and address in targets:
            problems.append(f"{address} cannot deliver to itself.")
        if problems:
            errors.append(f"row {number}: {' '.join(problems)}")
            continue
        if errors:
            continue  # the import is refused: only the rest of its errors matter now
        assert address is not None
        all_targets.update(targets)
        destinations, active = ",".join(targets), bool(row.active)
        addresses.append(address)
        values.append((domain.pk, address, destinations, active, at, at))
        snapshot = {"id": None, "domain_id": domain.pk, "source": address,
                    "destinations": destinations, "active": active}
        created.add(object_id=None, object_repr=address,
                    after=audit.snapshot_of(columns, (snapshot[c] for c in columns)))
    if errors:
        raise ValidationError(errors)
    prepared = PreparedImport(kind="aliases", domain=domain, addresses=addresses, rows=values,
                              created=created, targets=frozenset(all_targets),
                              checked_domains=checked_domains, now=now, actor=actor)
    if addresses:
        _check_tables(prepared, _current(domain))
    return prepared


def alias_import_problems(
    *, domain: Domain, rows: Sequence[AliasImport], checked_domains: Collection[str] | None,
) -> list[list[str]]:
    """What import_aliases would refuse, for each row (same order); writes nothing.

    `checked_domains`: the actor's reach, as for create_alias (see _is_checked).
    """
    problems: list[list[str]] = [[] for _ in rows]
    seen: set[str] = set()
    candidates: list[tuple[int, str, list[str]]] = []
    for index, row in enumerate(rows):
        errors = problems[index]
        address = _import_address(row.source, domain, seen, errors, allow_catchall=True)
        try:
            targets = _parse_destinations(row.destinations)
        except ValidationError as exc:
            errors.extend(exc.messages)
            continue
        if address is not None and address in targets:
            errors.append(f"{address} cannot deliver to itself.")
        elif address is not None:
            candidates.append((index, address, targets))
    taken = _taken_addresses({address for _, address, _ in candidates}, domain)
    unknown = _unknown_local_destinations({t for _, _, ts in candidates for t in ts},
                                          known=seen, source_domain=domain.name,
                                          checked_domains=checked_domains)
    has = domain_usage(domain).aliases
    adding = 0
    for index, address, targets in candidates:
        if address in taken:
            problems[index].append(f"{address} already exists.")
            continue
        missing = [t for t in targets if t in unknown]
        if missing:
            problems[index].append(_unknown_message(missing))
        adding += 1
        try:
            _check_alias_count(domain, has, adding=adding, row=True)
        except ValidationError as exc:
            problems[index].extend(exc.messages)
    return problems


# ---------------------------------------------------------------- helpers


def _import_address(raw: str, domain: Domain, seen: set[str], errors: list[str], *,
                    allow_catchall: bool = False, mailbox: bool = False) -> str | None:
    """The normalised address of an import row in `domain`, seen once; else None + why."""
    try:
        address = normalize_hosted_address(raw, mailbox=mailbox, allow_catchall=allow_catchall)
    except ValidationError as exc:
        errors.extend(exc.messages)
        return None
    if domain_of(address) != domain.name:
        errors.append(f"{address} is not in {domain.name}.")
        return None
    if address in seen:
        errors.append(f"{address} appears twice.")
        return None
    seen.add(address)
    return address
