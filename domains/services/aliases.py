"""Writes to aliases, one at a time; the catch-all is the alias `@domain`."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from django.db import transaction

from core import audit
from core.actor import Actor
from core.errors import FieldErrors, on_field
from domains.address_changes import addresses_changed
from domains.models import Alias
from domains.selectors import domain_usage
from domains.services._common import (
    _audit_change,
    _check_address_free,
    _insert,
    _lock,
    _lock_domain,
    _lock_domain_of,
)
from domains.services.destinations import (
    _check_destinations,
    _parse_destinations,
    _remove_destinations,
)
from domains.services.limits import _check_alias_count
from domains.validators import normalize_hosted_address


def create_alias(
    *, actor: Actor, source: str, destinations: str | Iterable[str], active: bool = True,
    checked_domains: Collection[str] | None,
) -> Alias:
    """`checked_domains`: the actor's reach, see _is_checked; None for every domain."""
    problems = FieldErrors()  # every problem with the input at once
    with problems.on("source"):
        address = normalize_hosted_address(source, mailbox=False, allow_catchall=True)
    with problems.on("destinations"):
        targets = _parse_destinations(destinations)
    problems.raise_any()
    with transaction.atomic():
        with on_field("source"):
            domain = _lock_domain_of(address)
            _check_address_free(address)
        with on_field("destinations"):
            _check_destinations(address, targets, checked_domains)
        _check_alias_count(domain, domain_usage(domain).aliases, adding=1)
        alias = Alias(domain=domain, source=address, destinations=",".join(targets),
                      active=active)
        _insert(alias, f"{address} already exists.")
        addresses_changed(mailboxes=targets)
        audit.record(actor=actor, action="alias.create", obj=alias, domain=domain,
                     after=audit.snapshot(alias))
    return alias


def update_alias(
    *, actor: Actor, alias: Alias, destinations: str | Iterable[str] | None = None,
    active: bool | None = None, checked_domains: Collection[str] | None,
) -> Alias:
    """`checked_domains`: the actor's reach, see _is_checked; None for every domain."""
    with transaction.atomic():
        domain = _lock_domain(alias.domain)
        locked = _lock(Alias, alias.pk, str(alias))
        before = audit.snapshot(locked)
        listed = locked.destination_list
        if destinations is not None:
            with on_field("destinations"):
                targets = _parse_destinations(destinations)
                _check_destinations(locked.source, targets, checked_domains)
            locked.destinations = ",".join(targets)
        if active is not None:
            locked.active = active
        locked.save()
        addresses_changed(mailboxes={*listed, *locked.destination_list})
        _audit_change(actor, "alias.update", locked, domain, before)
    return locked


def delete_alias(*, actor: Actor, alias: Alias) -> None:
    with transaction.atomic():
        domain = _lock_domain(alias.domain)
        locked = _lock(Alias, alias.pk, str(alias))
        if not locked.is_catchall:
            # Aliases that forwarded to this one would point at nothing.
            _remove_destinations(actor, {locked.source}, contains=locked.source, home=domain)
        audit.record(actor=actor, action="alias.delete", obj=locked, domain=domain,
                     before=audit.snapshot(locked))
        locked.delete()
        addresses_changed(mailboxes=locked.destination_list)
