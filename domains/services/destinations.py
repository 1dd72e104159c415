"""An alias's destinations: parsed, checked against the tables within the
actor's reach, and taken out of every alias when their address is deleted."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from django.core.exceptions import ValidationError
from django.utils import timezone

from core import audit
from core.actor import ELSEWHERE, Actor
from core.models import AuditEntry
from domains.models import Alias, Domain, Mailbox
from domains.services._common import _in_chunks
from domains.validators import domain_of, normalize_address

DESTINATIONS_MAX = 100

# The actor of a change an admin's delete causes in another domain's alias: that
# domain's admins see the change in their history, but not who in which other
# tenant caused it (superadmins find the delete itself at the same time).
ELSEWHERE_ACTOR = ELSEWHERE


def _parse_destinations(destinations: str | Iterable[str]) -> list[str]:
    items = destinations.split(",") if isinstance(destinations, str) else list(destinations)
    result: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            continue
        address = normalize_address(item)
        if address not in result:
            result.append(address)
    if not result:
        raise ValidationError("An alias needs at least one destination address.")
    if len(result) > DESTINATIONS_MAX:
        raise ValidationError(f"An alias can have at most {DESTINATIONS_MAX} destinations.")
    return result


def _check_destinations(source: str, targets: list[str],
                        checked_domains: Collection[str] | None) -> None:
    if source in targets:
        raise ValidationError(f"{source} cannot deliver to itself.")
    checked = [t for t in targets if _is_checked(t, source, checked_domains)]
    local = {t for t in checked if Domain.objects.filter(name=domain_of(t)).exists()}
    if not local:
        return
    known = set(Mailbox.objects.filter(email__in=local).values_list("email", flat=True))
    known |= set(Alias.objects.filter(source__in=local).values_list("source", flat=True))
    unknown = sorted(local - known)
    if unknown:
        raise ValidationError(_unknown_message(unknown))


def _is_checked(target: str, source: str, checked_domains: Collection[str] | None) -> bool:
    """Whether a destination is checked against the tables, or taken as it is.

    A domain admin's reach is `checked_domains` plus the alias's own domain.
    A destination elsewhere is taken unchecked, like an external address, so
    the answer is the same whether its domain or address exists here or not:
    a domain admin learns nothing outside their reach, and forwarding to
    another tenant's address keeps working. None checks every domain
    (superadmins, the command line).
    """
    domain = domain_of(target)
    return checked_domains is None or domain == domain_of(source) or domain in checked_domains


def _unknown_local_destinations(targets: set[str], *, known: set[str], source_domain: str,
                                checked_domains: Collection[str] | None) -> set[str]:
    """Targets in a domain of this server that are neither a mailbox, an alias nor `known`.

    The batch form of _check_destinations: a few queries per 5,000 addresses.
    Only targets in the actor's reach are looked at (see _is_checked).
    """
    targets = {t for t in targets if _is_checked(t, f"@{source_domain}", checked_domains)}
    local_domains: set[str] = set()
    for part in _in_chunks(sorted({domain_of(t) for t in targets})):
        local_domains.update(Domain.objects.filter(name__in=part)
                             .values_list("name", flat=True))
    local = {t for t in targets if domain_of(t) in local_domains} - known
    existing: set[str] = set()
    for part in _in_chunks(sorted(local)):
        existing.update(Mailbox.objects.filter(email__in=part).values_list("email", flat=True))
        existing.update(Alias.objects.filter(source__in=part).values_list("source", flat=True))
    return local - existing


def _unknown_message(unknown: Sequence[str]) -> str:
    return (f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} in a domain of this "
            "server but neither a mailbox nor an alias.")


def _remove_destinations(actor: Actor, addresses: set[str], *, contains: str, home: Domain,
                         exclude_domain: Domain | None = None) -> None:
    """Take deleted addresses (of the domain `home`) out of the aliases that
    delivered to them.

    Destinations are a comma list, so this is a substring scan: fine for a
    delete, never used on a lookup path. An alias left empty is deleted.
    The writes are batched: the queries do not grow with the aliases.
    """
    query = Alias.objects.select_for_update().filter(destinations__contains=contains)
    if exclude_domain is not None:
        query = query.exclude(domain=exclude_domain)
    aliases = list(query)
    # Their domains in one read, not select_related: FOR UPDATE would then lock
    # the other domains' rows too, in an order that can deadlock with a delete there.
    domains = Domain.objects.in_bulk({alias.domain_id for alias in aliases})
    now = timezone.now()
    changed: list[Alias] = []
    emptied: list[int] = []
    rows: list[AuditEntry] = []
    for alias in aliases:
        remaining = [d for d in alias.destination_list if d not in addresses]
        if remaining == alias.destination_list:
            continue
        alias.domain = domains[alias.domain_id]
        who = actor if alias.domain_id == home.pk else ELSEWHERE_ACTOR
        before = audit.snapshot(alias)
        if remaining:
            alias.destinations = ",".join(remaining)
            alias.modified = now
            changed.append(alias)
            rows.append(audit.entry(actor=who, action="alias.update", obj=alias,
                                    domain=alias.domain,
                                    before={"destinations": before["destinations"]},
                                    after={"destinations": alias.destinations}))
        else:
            rows.append(audit.entry(actor=who, action="alias.delete", obj=alias,
                                    domain=alias.domain, before=before,
                                    after={"reason": "last destination "
                                           + ",".join(alias.destination_list) + " deleted"}))
            emptied.append(alias.pk)
    Alias.objects.bulk_update(changed, ["destinations", "modified"], batch_size=1000)
    for part in _in_chunks(emptied):
        Alias.objects.filter(pk__in=part).delete()
    AuditEntry.objects.bulk_create(rows, batch_size=1000)
