"""What a panel account may reach: which domains, and their rows. No request here.

Superadmins reach every domain; a domain admin the domains granted to them
(`DomainAdmin`, kept beside the domains it opens); a mailbox user no domain
at all (their own mailbox is `access.own_mailbox`). Services and background
jobs ask here with the account alone; `domains.access` adapts it to views.
"""

from __future__ import annotations

from typing import TypeVar

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Model, QuerySet

from core.http import is_mailbox_user
from domains.models import Domain, DomainAdmin

_M = TypeVar("_M", bound=Model)


def is_admin(user: User | AnonymousUser) -> bool:
    if not user.is_authenticated or is_mailbox_user(user):
        return False
    return bool(user.is_superuser or DomainAdmin.objects.filter(user_id=user.pk).exists())


def visible_domains(user: User | AnonymousUser) -> QuerySet[Domain]:
    if not is_admin(user):
        return Domain.objects.none()
    if user.is_superuser:
        return Domain.objects.all()
    return Domain.objects.filter(admin_grants__user_id=int(user.pk or 0))


def checked_domains(user: User | AnonymousUser | None) -> frozenset[str] | None:
    """The domain names a service may look into for this user; None for every domain.

    Services take it as `checked_domains`: what lies outside is answered as
    if it were not on this server, so a domain admin learns nothing about it.
    """
    if user is not None and is_admin(user) and user.is_superuser:
        return None
    if user is None:
        return frozenset()
    return frozenset(visible_domains(user).values_list("name", flat=True))


def checked_domains_of(username: str) -> frozenset[str] | None:
    """checked_domains of the account named `username` (a background job's actor)."""
    return checked_domains(User.objects.filter(username=username).first())


def in_reach(user: User | AnonymousUser, rows: QuerySet[_M], domain_field: str = "domain"
             ) -> QuerySet[_M]:
    """`rows` limited to the user's domains.

    Superadmins get the queryset untouched: a `domain_id IN (SELECT ...)`
    over every domain makes MariaDB materialise 200,000 rows before it can
    sort and cut a page. A domain admin's few domain ids go in as a list.
    """
    if is_admin(user) and user.is_superuser:
        return rows
    ids = list(visible_domains(user).values_list("pk", flat=True))
    return rows.filter(**{f"{domain_field}_id__in": ids})
