"""Writes to alias domains: a name that receives for every address of its target."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from core import audit
from core.actor import Actor
from core.errors import on_field
from domains.address_changes import addresses_changed
from domains.models import AliasDomain, Domain
from domains.services._common import _insert, _lock, _lock_domain, _lock_domain_by_name, _switch
from domains.validators import normalize_domain


def create_alias_domain(
    *, actor: Actor, name: str, target: str | Domain, active: bool = True
) -> AliasDomain:
    with on_field("name"):
        alias_name = normalize_domain(name)
    with on_field("target"):
        target_name = target.name if isinstance(target, Domain) else normalize_domain(target)
    with on_field("name"):
        if alias_name == target_name:
            raise ValidationError(f"{alias_name} cannot be an alias of itself.")
    with transaction.atomic(), on_field("name"):
        if Domain.objects.filter(name=alias_name).exists():
            raise ValidationError(
                f"{alias_name} is a domain with its own mailboxes; an alias domain cannot "
                "shadow it."
            )
        if AliasDomain.objects.filter(name=alias_name).exists():
            raise ValidationError(f"The alias domain {alias_name} already exists.")
        other = AliasDomain.objects.select_related("target").filter(name=target_name).first()
        if other is not None:
            raise ValidationError(
                f"{target_name} is itself an alias domain (of {other.target.name}); point "
                f"{alias_name} at {other.target.name} instead."
            )
        target_domain = _lock_domain_by_name(target_name)
        alias_domain = AliasDomain(name=alias_name, target=target_domain, active=active)
        _insert(alias_domain, f"The alias domain {alias_name} already exists.")
        addresses_changed(domain=target_domain)
        audit.record(actor=actor, action="aliasdomain.create", obj=alias_domain,
                     domain=target_domain, after=audit.snapshot(alias_domain))
    return alias_domain


def set_alias_domain_active(*, actor: Actor, alias_domain: AliasDomain,
                            active: bool) -> AliasDomain:
    with transaction.atomic():
        # The target first, as every write of the domain's addresses locks it.
        target = _lock_domain(alias_domain.target)
        locked = _lock(AliasDomain, alias_domain.pk, str(alias_domain))
        _switch(actor, "aliasdomain", locked, active, target)
        addresses_changed(domain=target)
    return locked


def delete_alias_domain(*, actor: Actor, alias_domain: AliasDomain) -> None:
    with transaction.atomic():
        target = _lock_domain(alias_domain.target)
        locked = _lock(AliasDomain, alias_domain.pk, str(alias_domain))
        audit.record(actor=actor, action="aliasdomain.delete", obj=locked,
                     domain=target, before=audit.snapshot(locked))
        locked.delete()
        addresses_changed(domain=target)
