"""Reads shared by pages and commands."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models
from django.db.models import Count, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from domains import passwords, search
from domains.models import Alias, AliasDomain, Domain, ImportJob, KeptMaildir, Mailbox
from domains.validators import (
    domain_of,
    normalize_address,
    normalize_domain,
    normalize_hosted_address,
)

_M = TypeVar("_M", bound=models.Model)
TOTALS_SECONDS = 30


def counts(domain_ids: list[int] | None = None) -> dict[str, int]:
    """Totals over every domain (None) or over the given domain ids."""
    if domain_ids is None:
        # Counting 200,000 rows costs tens of milliseconds on every dashboard
        # load; totals half a minute old are exact enough for an overview.
        totals = cache.get_or_set("mailadmin:totals", lambda: {
            "domains": Domain.objects.count(),
            "mailboxes": Mailbox.objects.count(),
            "aliases": Alias.objects.count(),
            "alias_domains": AliasDomain.objects.count(),
        }, timeout=TOTALS_SECONDS)
        return dict(totals or {})
    return {
        "domains": len(domain_ids),
        "mailboxes": Mailbox.objects.filter(domain_id__in=domain_ids).count(),
        "aliases": Alias.objects.filter(domain_id__in=domain_ids).count(),
        "alias_domains": AliasDomain.objects.filter(target_id__in=domain_ids).count(),
    }


def with_usage(domains: QuerySet[Domain]) -> QuerySet[Domain]:
    """Domains annotated with mailbox_count and alias_count.

    Correlated subqueries, not a join with COUNT(DISTINCT): the database
    counts only for the rows a page returns, each through the domain_id index.
    """
    def count_of(model: type[models.Model]) -> Subquery:
        rows = (model._default_manager.filter(domain=OuterRef("pk")).order_by()
                .values("domain").annotate(n=Count("*")).values("n"))
        return Subquery(rows, output_field=models.IntegerField())

    return domains.annotate(
        mailbox_count=Coalesce(count_of(Mailbox), 0),
        alias_count=Coalesce(count_of(Alias), 0),
    ).order_by("name")


def domains_with_usage() -> QuerySet[Domain]:
    return with_usage(Domain.objects.all())


@dataclass(frozen=True)
class DomainUsage:
    mailboxes: int
    aliases: int
    quota_total: int
    unlimited_mailboxes: int


def domain_usage(domain: Domain) -> DomainUsage:
    """What a domain's limits are measured against (the services read it under its lock)."""
    totals = Mailbox.objects.filter(domain=domain).aggregate(quota=Sum("quota"))
    return DomainUsage(
        mailboxes=Mailbox.objects.filter(domain=domain).count(),
        aliases=Alias.objects.filter(domain=domain).count(),
        quota_total=totals["quota"] or 0,
        unlimited_mailboxes=Mailbox.objects.filter(domain=domain, quota=0).count(),
    )


def new_address_problem(local_part: str, domain: Domain) -> str | None:
    """Why `local_part@domain` cannot become a new mailbox, or None.

    The same normaliser and the same checks as services.create_mailbox, so
    that "free" here means the create will take it.
    """
    try:
        address = normalize_hosted_address(f"{local_part}@{domain.name}", mailbox=True)
    except ValidationError as error:
        return " ".join(error.messages)
    if Mailbox.objects.filter(email=address).exists():
        return f"{address} is already a mailbox."
    if Alias.objects.filter(source=address).exists():
        return f"{address} is already an alias."
    if kept_maildirs().filter(address=address, domain_ref=domain.pk).exists():
        return KeptMaildir.refusal(address)
    return None


def generated_passwords_waiting(job: ImportJob, actor_name: str) -> bool:
    """Whether `job` holds generated passwords that `actor_name` may download now
    (services.take_generated_passwords); the passwords themselves are not loaded."""
    return (job.actor == actor_name and job.finished is not None
            and job.finished >= timezone.now() - ImportJob.GENERATED_KEPT
            and ImportJob.objects.filter(pk=job.pk).exclude(generated="").exists())


def kept_maildirs() -> QuerySet[KeptMaildir]:
    """Maildirs of deleted mailboxes still on disk (neither removed nor reused)."""
    return KeptMaildir.objects.filter(removed_at=None, reused_at=None).order_by("address")


def kept_maildir_expiry(kept: KeptMaildir) -> datetime.datetime:
    """When the grace period of `kept` ends and the daily sweep hands it to the agent."""
    return kept.deleted_at + datetime.timedelta(days=settings.MAILADMIN_KEPT_MAILDIR_DAYS)


def costly_hashes() -> Iterator[tuple[str, str, str]]:
    """(address, scheme, cost) of every mailbox whose hash is over the cost bounds.

    Read from each hash's parameters, never by running one; one pass over
    the table in address order, a chunk at a time.
    """
    rows = Mailbox.objects.order_by("email").values_list("email", "password")
    for email, stored in rows.iterator(chunk_size=2000):
        costly = passwords.costly_hash(stored)
        if costly is not None:
            yield email, *costly


def kept_maildir_of(raw_address: str) -> KeptMaildir | None:
    """The open kept Maildir of an address as typed, kept by the domain of that
    name now, or None (also for a bad address)."""
    try:
        address = normalize_address(raw_address)
    except ValidationError:
        return None
    domain = Domain.objects.filter(name=domain_of(address)).values("pk")
    return (kept_maildirs().filter(address=address, domain_ref__in=domain)
            .order_by("-deleted_at").first())


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


def mailbox_search_page(mailboxes: QuerySet[Mailbox], typed: str, *, page: int, size: int
                        ) -> tuple[list[Mailbox], bool]:
    """One page of the mailboxes matching a search, and whether there is a next page.

    First the mailboxes whose address starts with the term (address order),
    then those whose display name starts with it, without case (name order).
    Each part is one index range read in index order, so a page costs its
    rows, not the matches: a term can match 100,000 mailboxes.
    """
    term = search.address_term(typed)
    by_address = mailboxes.filter(email__prefix=term).order_by("email")
    by_name = (mailboxes.filter(name__folded__prefix=search.name_term(typed))
               .exclude(email__prefix=term).order_by(search.Folded("name"), "email"))
    offset = (page - 1) * size
    rows = list(by_address[offset: offset + size + 1])
    if len(rows) > size:
        return rows[:size], True
    # Past the last address match: the name matches continue where they end.
    # (On an empty page the count reads at most `offset` index entries.)
    skip = 0 if rows or not offset else offset - by_address.count()
    rows += by_name[skip: skip + size + 1 - len(rows)]
    return rows[:size], len(rows) > size
