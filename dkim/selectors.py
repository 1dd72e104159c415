"""Reads of the DKIM key registry, for the DKIM page, the command, the tasks and dnscheck."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from django.conf import settings
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from dkim.models import EXPECTED_STATES, DkimKey
from domains.models import Domain
from mailhost.models import ConfigApply, MailHost

State = DkimKey.State
# A key the host has not made this long after it was asked is asked again.
GENERATION_RETRY_AFTER = datetime.timedelta(minutes=5)


def active_key(domain: Domain) -> DkimKey | None:
    """The key the domain signs with now (its RSA one first), if one is set."""
    return (DkimKey.objects.filter(domain=domain, state=State.ACTIVE)
            .order_by("-algorithm", "-activated", "-pk").first())


def domain_keys(domain: Domain) -> list[DkimKey]:
    """Every key of the domain, live ones first (newest first), then the gone ones."""
    order = {s: n for n, s in enumerate((State.ACTIVE, State.PUBLISHED, State.PENDING,
                                         State.RETIRING, State.REVOKED, State.GONE))}
    keys = list(DkimKey.objects.filter(domain=domain).select_related("domain"))
    return sorted(keys, key=lambda k: (order.get(State(k.state), 9), -k.pk))


def key_by_selector(domain: Domain, selector: str) -> DkimKey | None:
    return (DkimKey.objects.filter(domain=domain, selector=selector.strip().lower())
            .exclude(state=State.GONE).select_related("domain").first())


def expected_keys(domain_ids: Iterable[int]) -> dict[int, list[DkimKey]]:
    """Every key each domain should publish, by domain id: pending (once made),
    published, active and retiring.

    One query whatever the number of domains; a domain without keys is absent.
    """
    keys: dict[int, list[DkimKey]] = {}
    rows = (DkimKey.objects.filter(domain_id__in=list(domain_ids), state__in=EXPECTED_STATES)
            .exclude(public_key="").order_by("domain_id", "state", "selector", "pk"))
    for key in rows:
        keys.setdefault(cast(int, key.domain_id), []).append(key)
    return keys


def keys_to_check(domain_ids: Iterable[int] | None = None) -> QuerySet[DkimKey]:
    """Keys the publish check looks for: pending ones with a public key, and revoked ones."""
    # A deleted domain's keys are not looked for: its DNS is no longer this
    # panel's to ask about (their files go once the config without them is applied).
    rows = (DkimKey.objects.filter(state__in=(State.PENDING, State.REVOKED),
                                   domain__isnull=False)
            .exclude(state=State.PENDING, public_key="")
            .select_related("domain").order_by("domain__name", "pk"))
    if domain_ids is not None:
        rows = rows.filter(domain_id__in=list(domain_ids))
    return rows


def keys_awaiting_generation(now: datetime.datetime | None = None) -> QuerySet[DkimKey]:
    """Pending keys the mail host was asked to make a while ago and has not."""
    cutoff = (now or timezone.now()) - GENERATION_RETRY_AFTER
    return DkimKey.objects.filter(state=State.PENDING, public_key="", external=False,
                                  created__lt=cutoff, domain__isnull=False)


@dataclass(frozen=True)
class SigningKey:
    """One key Rspamd signs with: its selector and the private key's file on the mail host."""

    selector: str
    algorithm: str
    path: str


def key_file(key_dir: str, domain: str, selector: str) -> str:
    """Where the root helper's dkim-keygen put the key (helper.conf dkim_key_dir)."""
    return f"{key_dir.rstrip('/')}/{domain}.{selector}.key"


def signing_keys(key_dir: str) -> dict[str, list[SigningKey]]:
    """Domain name -> the keys it signs with: its active keys made on this host, RSA first.

    A key made elsewhere has no private key here and never signs; a key in
    any other state never signs either (only a published key is activated).
    """
    rows = (DkimKey.objects.filter(state=State.ACTIVE, external=False, domain__isnull=False)
            .exclude(public_key="").select_related("domain")
            .order_by("domain__name", "-algorithm", "selector"))
    signing: dict[str, list[SigningKey]] = {}
    for key in rows:
        name = key.domain_name
        signing.setdefault(name, []).append(
            SigningKey(key.selector, key.algorithm, key_file(key_dir, name, key.selector)))
    return signing


def last_signing_change() -> datetime.datetime | None:
    """When a key made on this host last started or stopped signing (activated, retired)."""
    started = (DkimKey.objects.filter(state=State.ACTIVE, external=False)
               .aggregate(latest=Max("activated"))["latest"])
    stopped = (DkimKey.objects.filter(external=False, activated__isnull=False,
                                      retiring_since__isnull=False)
               .aggregate(latest=Max("retiring_since"))["latest"])
    return max((t for t in (started, stopped) if t is not None), default=None)


def signing_config_outdated(host: MailHost) -> bool:
    """Whether the host's dkim_signing.conf may not list the keys that sign now.

    True until an apply that started (and so rendered) after the last change
    ended applied or with nothing to change: a change made while an apply was
    running, or whose apply was lost with its agent, is applied again.
    """
    changed = last_signing_change()
    if changed is None:
        return False
    return not ConfigApply.objects.filter(
        host=host, check_only=False, started__gt=changed,
        outcome__in=(ConfigApply.Outcome.APPLIED, ConfigApply.Outcome.NOTHING_TO_CHANGE),
    ).exists()


def deleted_domain_key_files() -> QuerySet[DkimKey]:
    """Keys of deleted domains whose private key file is still on the mail host."""
    return DkimKey.objects.filter(domain__isnull=True, state=State.REVOKED,
                                  external=False).order_by("deleted_domain", "pk")


def used_selectors(domain: Domain) -> set[str]:
    """Every selector the domain has used, and a deleted domain of its name.

    The key file is DOMAIN.SELECTOR.key: a deleted namesake's file not yet
    removed would otherwise be read back as the new key (dkim-pubkey first),
    and a receiver may still cache its record.
    """
    return set(DkimKey.objects.filter(Q(domain=domain)
                                      | Q(domain__isnull=True, deleted_domain=domain.name))
               .values_list("selector", flat=True))


def rotating_domains(domain_ids: Iterable[int] | None = None) -> QuerySet[Domain]:
    """Domains with a key made on this host in any state but gone: the rotation tick's."""
    rows = Domain.objects.filter(
        pk__in=DkimKey.objects.filter(external=False).exclude(state=State.GONE)
        .values("domain_id"))
    if domain_ids is not None:
        rows = rows.filter(pk__in=list(domain_ids))
    return rows.order_by("name")


def stalled_since(now: datetime.datetime | None = None) -> datetime.datetime:
    """A pending key made before this is a stalled rotation step (its record not published)."""
    return (now or timezone.now()) - datetime.timedelta(days=settings.MAILADMIN_DKIM_STALL_DAYS)


def stalled_revoked_keys(domain_ids: Iterable[int], before: datetime.datetime
                         ) -> dict[int, list[DkimKey]]:
    """Keys revoked before `before` whose revoked form DNS has not shown yet, by domain id."""
    keys: dict[int, list[DkimKey]] = {}
    rows = (DkimKey.objects.filter(domain_id__in=list(domain_ids), state=State.REVOKED,
                                   revoked__lt=before).order_by("domain_id", "selector", "pk"))
    for key in rows:
        keys.setdefault(cast(int, key.domain_id), []).append(key)
    return keys
