"""Reads shared by pages and commands."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet

from domains.models import Alias, AliasDomain, Domain, Mailbox
from domains.validators import normalize_address, normalize_domain


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


def domain_by_name(name: str) -> Domain:
    domain_name = normalize_domain(name)
    try:
        return Domain.objects.get(name=domain_name)
    except Domain.DoesNotExist:
        raise ValidationError(f"{domain_name} is not a domain of this server.") from None


def mailbox_by_email(email: str) -> Mailbox:
    address = normalize_address(email)
    try:
        return Mailbox.objects.select_related("domain").get(email=address)
    except Mailbox.DoesNotExist:
        raise ValidationError(f"{address} is not a mailbox.") from None


def alias_by_source(source: str) -> Alias:
    address = normalize_address(source, allow_catchall=True)
    try:
        return Alias.objects.select_related("domain").get(source=address)
    except Alias.DoesNotExist:
        raise ValidationError(f"{address} is not an alias.") from None


def alias_domain_by_name(name: str) -> AliasDomain:
    domain_name = normalize_domain(name)
    try:
        return AliasDomain.objects.select_related("target").get(name=domain_name)
    except AliasDomain.DoesNotExist:
        raise ValidationError(f"{domain_name} is not an alias domain.") from None
