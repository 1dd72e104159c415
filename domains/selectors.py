"""Reads shared by pages and commands."""

from __future__ import annotations

from typing import TypeVar

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models
from django.db.models import Count, QuerySet

from domains.models import Alias, AliasDomain, Domain, Mailbox
from domains.validators import normalize_address, normalize_domain

_M = TypeVar("_M", bound=models.Model)


def counts() -> dict[str, int]:
    return {
        "domains": Domain.objects.count(),
        "mailboxes": Mailbox.objects.count(),
        "aliases": Alias.objects.count(),
        "alias_domains": AliasDomain.objects.count(),
    }


def domains_with_usage() -> QuerySet[Domain]:
    return Domain.objects.annotate(
        mailbox_count=Count("mailboxes", distinct=True),
        alias_count=Count("aliases", distinct=True),
    ).order_by("name")


def _one(queryset: QuerySet[_M], message: str, **lookup: str) -> _M:
    try:
        return queryset.get(**lookup)
    except ObjectDoesNotExist:
        raise ValidationError(message) from None


def domain_by_name(name: str) -> Domain:
    domain_name = normalize_domain(name)
    return _one(Domain.objects.all(), f"{domain_name} is not a domain of this server.",
                name=domain_name)


def mailbox_by_email(email: str) -> Mailbox:
    address = normalize_address(email)
    return _one(Mailbox.objects.select_related("domain"), f"{address} is not a mailbox.",
                email=address)


def alias_by_source(source: str) -> Alias:
    address = normalize_address(source, allow_catchall=True)
    return _one(Alias.objects.select_related("domain"), f"{address} is not an alias.",
                source=address)


def alias_domain_by_name(name: str) -> AliasDomain:
    domain_name = normalize_domain(name)
    return _one(AliasDomain.objects.select_related("target"),
                f"{domain_name} is not an alias domain.", name=domain_name)
