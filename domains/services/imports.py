"""Bulk imports of mailboxes and aliases (the CSV import's writes), all rows or
none, and their dry runs.

The *_problems functions are dry runs: the checks of the matching import,
row by row, without a lock and without writing; the import re-checks under
the lock. The limits are the same checks (services.limits) in both.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core import audit
from core.actor import Actor
from core.models import AuditEntry
from domains import passwords
from domains.address_changes import addresses_changed
from domains.models import Alias, Domain, KeptMaildir, Mailbox
from domains.selectors import domain_usage
from domains.services._common import (
    NAME_MAX,
    _in_chunks,
    _insert_many,
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


# ---------------------------------------------------------------- mailboxes


def import_mailboxes(
    *, actor: Actor, domain: Domain, rows: Sequence[MailboxImport], batch_size: int = 2000
) -> list[Mailbox]:
    """Create many mailboxes with pre-hashed passwords: all of them or none.

    Validation runs over every row first and reports every bad row at once.
    """
    return _import_mailboxes(actor=actor, domain=domain, rows=rows, batch_size=batch_size)[0]


def _import_mailboxes(
    *, actor: Actor, domain: Domain, rows: Sequence[MailboxImport], batch_size: int
) -> tuple[list[Mailbox], AuditEntry | None]:
    """import_mailboxes, and the audit row of the import (None for no rows)."""
    errors: list[str] = []
    mailboxes: list[Mailbox] = []
    seen: set[str] = set()
    now = timezone.now()
    for number, row in enumerate(rows, start=1):
        try:
            local, domain_part = split_address(normalize_hosted_address(row.email, mailbox=True))
            address = f"{local}@{domain_part}"
            if domain_part != domain.name:
                raise ValidationError(f"{address} is not in {domain.name}.")
            if address in seen:
                raise ValidationError(f"{address} appears twice.")
            seen.add(address)
            mailboxes.append(Mailbox(
                domain=domain, email=address, password=passwords.normalize_hash(row.password_hash),
                name=_text(row.name, NAME_MAX, "The name"),
                quota=domain.default_quota if row.quota is None else parse_size(row.quota),
                active=True, password_changed=now,
            ))
        except ValidationError as exc:
            errors.append(f"row {number}: {' '.join(exc.messages)}")
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        locked = _lock_for_import(domain, seen)
        kept = _kept_addresses(seen, locked)
        if kept:
            raise ValidationError([KeptMaildir.refusal(address) for address in sorted(kept)])
        usage = domain_usage(locked)
        _check_mailbox_limits(locked, usage, adding=len(mailboxes),
                              quota=sum(m.quota for m in mailboxes),
                              any_unlimited=any(m.quota == 0 for m in mailboxes))
        event = _insert_many(actor, "mailbox.import", locked, mailboxes, "email", batch_size,
                             kind="mailboxes")
    return mailboxes, event


def import_mailboxes_with_state(
    *, actor: Actor, domain: Domain, rows: Sequence[MailboxImport], inactive: Iterable[str] = (),
    batch_size: int = 2000,
) -> list[Mailbox]:
    """import_mailboxes, then disable the `inactive` addresses among them: all or nothing."""
    switched_off = {normalize_address(address) for address in inactive}
    with transaction.atomic():
        created, event = _import_mailboxes(actor=actor, domain=domain, rows=rows,
                                           batch_size=batch_size)
        off = [m for m in created if m.email in switched_off]
        now = timezone.now()
        for part in _in_chunks([m.pk for m in off]):
            Mailbox.objects.filter(pk__in=part).update(active=False, modified=now)
        for mailbox in off:
            mailbox.active = False
        AuditEntry.objects.bulk_create(
            [audit.entry(actor=actor, action="mailbox.disable", obj=m, domain=domain,
                         before={"active": True}, after={"active": False}, parent=event)
             for m in off],
            batch_size=batch_size,
        )
        if event is not None and off:
            event.after = {**(event.after or {}), "disabled": len(off)}
            event.save(update_fields=["after"])
    return created


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
    taken = _taken_addresses({address for _, address, _ in candidates})
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
    errors: list[str] = []
    aliases: list[Alias] = []
    seen: set[str] = set()
    all_targets: set[str] = set()
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
        assert address is not None
        all_targets.update(targets)
        aliases.append(Alias(domain=domain, source=address, destinations=",".join(targets),
                             active=bool(row.active)))
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        locked = _lock_for_import(domain, seen)
        unknown = _unknown_local_destinations(all_targets, known=seen,
                                              source_domain=domain.name,
                                              checked_domains=checked_domains)
        if unknown:
            raise ValidationError(_unknown_message(sorted(unknown)))
        _check_alias_count(locked, domain_usage(locked).aliases, adding=len(aliases))
        for alias in aliases:
            alias.domain = locked
        _insert_many(actor, "alias.import", locked, aliases, "source", batch_size,
                     kind="aliases")
        addresses_changed(mailboxes=all_targets)
    return aliases


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
    taken = _taken_addresses({address for _, address, _ in candidates})
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


def _lock_for_import(domain: Domain, addresses: set[str]) -> Domain:
    """Lock the domain, then refuse the import if any of its addresses is taken."""
    locked = _lock_domain(domain)
    taken = _taken_addresses(addresses)
    if taken:
        raise ValidationError([f"{address} already exists." for address in sorted(taken)])
    return locked
