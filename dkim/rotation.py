"""The rotation tick: every domain's keys one safe step further, unattended.

    due               -> a new pending key (services.rotate; never a second one)
    pending           -> published: the publish check (its record seen for its TTL)
    published         -> active; the old key retiring; the signing config applied
    retiring + grace  -> revoked, once the applied config no longer signs with it
    revoked + p= seen -> gone (the host removes the file)
    domain deleted    -> revoked; gone once the config without it is applied

Each step is one lifecycle move under the domain's lock that refuses what its
state does not allow, so a tick rerun after an agent died part-way finds each
key where it was left and takes the next step: no duplicate key, no step
skipped. A key activated while an apply was already running (or whose apply
was lost) is applied again by the next tick (selectors.signing_config_outdated).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.utils import timezone

from core.actor import Actor
from dkim import publish, selectors, services
from dkim.models import DkimKey
from domains.models import Domain
from mailhost.models import MailHost

log = logging.getLogger(__name__)
State = DkimKey.State


def advance(domain_ids: Iterable[int] | None = None, *, actor: Actor,
            now: datetime.datetime | None = None) -> list[str]:
    """One tick for the given domains (every domain with keys made here when None).

    Returns one line per step taken, for the command and the task's log.
    """
    now = now or timezone.now()
    ids = None if domain_ids is None else list(domain_ids)
    steps: list[str] = []
    for key, seen in publish.check_keys(selectors.keys_to_check(ids), actor=actor):
        key.refresh_from_db()
        if key.state != State.PENDING or seen.status != "match":
            steps.append(f"{key.owner}: {key.state}"
                         + (f" ({seen.reason})" if seen.reason else ""))
    for domain in selectors.rotating_domains(ids):
        try:
            steps += _advance_domain(domain, actor=actor, now=now)
        except Exception:
            # One domain's trouble must not stop the others' rotation.
            log.exception("DKIM rotation of %s failed", domain.name)
    if not services.signing_config_applied():
        services.request_signing_apply(actor=actor)
        steps.append("signing configuration: applying (a key started or stopped signing)")
    elif ids is None:
        for key in selectors.deleted_domain_key_files():
            services.request_file_removal(key)
            steps.append(f"{key.owner}: removing the key file (its domain was deleted)")
    return steps


def _advance_domain(domain: Domain, *, actor: Actor, now: datetime.datetime) -> list[str]:
    steps: list[str] = []
    days = services.rotation_days(domain)
    keys = list(DkimKey.objects.filter(domain=domain).exclude(state=State.GONE)
                .select_related("domain").order_by("-pk"))
    if days:
        # RSA first: an ed25519 key is activated only beside an active RSA one.
        for algorithm in (DkimKey.Algorithm.RSA, DkimKey.Algorithm.ED25519):
            newest = next((k for k in keys if k.algorithm == algorithm
                           and k.state == State.PUBLISHED and not k.external), None)
            if newest is None:
                continue
            try:
                services.activate(actor=actor, key=newest)
            except ValidationError as error:
                services.note_problem(key=newest, problem="; ".join(error.messages))
                continue
            steps.append(f"{newest.owner}: active (applying the signing configuration)")
    outdated = selectors.signing_config_outdated(MailHost.current())
    for key in keys:
        key.refresh_from_db()
        if key.state != State.RETIRING:
            continue
        ends = services.grace_ends(key)
        if ends is None or now < ends:
            continue
        if outdated and not key.external:
            services.note_problem(key=key, problem="Waiting for the signing configuration "
                                  "without this key to be applied before revoking it.")
            continue
        services.revoke(actor=actor, key=key, now=now)
        steps.append(f"{key.owner}: revoked; publish "
                     f"{key.selector}._domainkey.{domain.name} with p= empty")
    if days:
        due = _due_algorithms(domain, days, now)
        if due:
            try:
                made = services.rotate(actor=actor, domain=domain, algorithms=due)
            except ValidationError:
                made = []  # under way already
            steps += [f"{k.owner}: generated (rotation every {days} days)" for k in made]
    return steps


def _due_algorithms(domain: Domain, days: int, now: datetime.datetime) -> tuple[str, ...]:
    """The algorithms whose active key made here signed for `days` days, with no
    successor pending or published yet."""
    due = []
    for algorithm in (DkimKey.Algorithm.RSA, DkimKey.Algorithm.ED25519):
        keys = DkimKey.objects.filter(domain=domain, algorithm=algorithm)
        current = (keys.filter(state=State.ACTIVE).order_by("-activated", "-pk").first())
        if current is None or current.external or current.activated is None:
            continue
        if keys.filter(state__in=(State.PENDING, State.PUBLISHED)).exists():
            continue
        if now - current.activated >= datetime.timedelta(days=days):
            due.append(str(algorithm))
    return tuple(due)
