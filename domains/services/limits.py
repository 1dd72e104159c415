"""A domain's limits: how they are set, and the one place each rule and its
message lives. The writes check them under the domain's lock; the CSV dry
runs (imports.*_import_problems) call the same checks row by row, with
`row=True` for the per-row wording of a count limit.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from core.errors import FieldErrors
from domains.models import Domain
from domains.selectors import DomainUsage
from domains.services._common import _plural
from domains.validators import format_size, parse_size


def _limits(max_mailboxes: Any, max_aliases: Any, max_quota: Any, default_quota: Any
            ) -> dict[str, int]:
    """The four limits, each refusal under the argument it concerns, all at once."""
    problems = FieldErrors()
    limits: dict[str, int] = {}
    with problems.on("max_mailboxes"):
        limits["max_mailboxes"] = _count(max_mailboxes, "The mailbox limit")
    with problems.on("max_aliases"):
        limits["max_aliases"] = _count(max_aliases, "The alias limit")
    with problems.on("max_quota"):
        limits["max_quota"] = parse_size(max_quota)
    with problems.on("default_quota"):
        limits["default_quota"] = parse_size(default_quota)
    problems.raise_any()
    if limits["max_quota"] and not limits["default_quota"]:
        raise ValidationError({"default_quota": (
            "A domain with a total quota needs a default mailbox quota as well.")})
    if limits["max_quota"] and limits["default_quota"] > limits["max_quota"]:
        raise ValidationError({"default_quota": (
            "The default mailbox quota is larger than the domain's total.")})
    return limits


def _count(value: Any, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{what} must be a whole number.") from None
    if number < 0 or number > 2**31 - 1:
        raise ValidationError(f"{what} must be between 0 (no limit) and {2**31 - 1}.")
    return number


def _check_mailbox_limits(
    domain: Domain, usage: DomainUsage, *, adding: int, quota: int, any_unlimited: bool = False
) -> None:
    """`adding` mailboxes holding `quota` in all fit the domain's count and total quota."""
    _check_mailbox_count(domain, usage.mailboxes, adding=adding)
    _check_quota(domain, usage.quota_total, quota, any_unlimited=any_unlimited or quota == 0)


def _check_mailbox_count(domain: Domain, has: int, *, adding: int, row: bool = False) -> None:
    _check_count(domain, domain.max_mailboxes, has, adding, "mailbox", "mailboxes", row)


def _check_alias_count(domain: Domain, has: int, *, adding: int, row: bool = False) -> None:
    _check_count(domain, domain.max_aliases, has, adding, "alias", "aliases", row)


def _check_count(domain: Domain, limit: int, has: int, adding: int, noun: str, nouns: str,
                 row: bool) -> None:
    """`row`: a dry run's row, the number `has + adding` among the rows before it."""
    if not limit or has + adding <= limit:
        return
    if row:
        raise ValidationError(
            f"Over the limit: {domain.name} allows {limit} {nouns} and has {has}; this would "
            f"be {noun} number {has + adding}.")
    if adding == 1:
        raise ValidationError(f"{domain.name} has reached its limit of {limit} {nouns}.")
    raise ValidationError(
        f"{domain.name} allows {limit} {nouns} and has {has}; {adding} more do not fit.")


def _check_quota(domain: Domain, allocated: int, adding: int, *, any_unlimited: bool) -> None:
    if not domain.max_quota:
        return
    if any_unlimited:
        raise ValidationError(
            f"{domain.name} limits its total quota to {format_size(domain.max_quota)}, so "
            "every mailbox needs a quota."
        )
    if allocated + adding > domain.max_quota:
        left = max(domain.max_quota - allocated, 0)
        raise ValidationError(
            f"{domain.name} has {format_size(left) if left else 'no'} quota left of "
            f"{format_size(domain.max_quota)}; {format_size(adding)} does not fit."
        )


def _check_new_total(domain: Domain, usage: DomainUsage, limits: dict[str, int]) -> None:
    """New limits for `domain` that what it holds already fits under."""
    if limits["max_mailboxes"] and usage.mailboxes > limits["max_mailboxes"]:
        raise ValidationError(
            f"{domain.name} has {_plural(usage.mailboxes, 'mailbox')}; the limit cannot "
            "be lower."
        )
    if limits["max_aliases"] and usage.aliases > limits["max_aliases"]:
        raise ValidationError(
            f"{domain.name} has {_plural(usage.aliases, 'alias')}; the limit cannot be lower."
        )
    if limits["max_quota"]:
        if usage.unlimited_mailboxes:
            raise ValidationError(
                f"{domain.name} has {usage.unlimited_mailboxes} mailboxes without a quota; "
                "give them one before limiting the domain's total."
            )
        if usage.quota_total > limits["max_quota"]:
            raise ValidationError(
                f"{domain.name}'s mailboxes already hold {format_size(usage.quota_total)} "
                "of quota; the total cannot be lower."
            )
