"""Every write of the DKIM key registry: typed, keyword-only, one transaction, audited.

Each lifecycle move is one function that refuses an illegal move with a clear
message (a ValidationError). Audit rows carry the public key at most: the
private key lives only on the mail host, in a file of Rspamd's user.
"""

from __future__ import annotations

import contextlib
import datetime
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core import audit, jobs
from core.actor import Actor
from dkim import records, selectors
from dkim.models import LIVE_STATES, DkimKey, DkimRotation
from domains.models import Domain
from mailhost import apply, privileged
from mailhost.models import MailHost

State = DkimKey.State
GENERATE_TASK = "dkim.generate_key"
REMOVE_FILE_TASK = "dkim.remove_key_file"
CHECK_DOMAIN_TASK = "dkim.check_domain"
RSA_BITS = (2048, 3072, 4096)
# A domain's own rotation interval, in days (0: off).
MIN_ROTATE_DAYS, MAX_ROTATE_DAYS = 14, 3650
ED25519_BITS = 256
# States in which a key holds its selector: a new key never reuses a selector the
# domain has ever used (a receiver may still cache the old record).
SELECTOR_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _locked(domain: Domain) -> Domain:
    return Domain.objects.select_for_update().get(pk=domain.pk)


def _locked_key(key: DkimKey) -> tuple[Domain, DkimKey]:
    if key.domain is None:
        raise ValidationError(f"{key.owner}: its domain was deleted; the key is history.")
    locked = _locked(key.domain)
    return locked, DkimKey.objects.select_for_update().select_related("domain").get(pk=key.pk)


def _move(*, actor: Actor, key: DkimKey, domain: Domain | str, action: str,
          **changes: object) -> None:
    before = audit.snapshot(key)
    for name, value in changes.items():
        setattr(key, name, value)
    key.save()
    audit.record(actor=actor, action=action, obj=key, domain=domain, before=before,
                 after=audit.snapshot(key))


def _refuse(key: DkimKey, move: str, allowed: tuple[str, ...]) -> None:
    if key.state not in allowed:
        raise ValidationError(
            f"{key.owner} is {key.state}: only a key that is {' or '.join(allowed)} can be "
            f"{move}.")


# ---------------------------------------------------------------- keys made elsewhere


def set_key(*, actor: Actor, domain: Domain, selector: str, public_key: str) -> DkimKey:
    """Make this key, made elsewhere, the one `domain` signs with, at `<selector>._domainkey`.

    Creates the domain's active external key, or replaces it (selector, key
    and algorithm) when it has one: a key made elsewhere has no private key
    here, so nothing else changes. A generated active key is not replaced
    this way (its private key would be left behind): activate a new key.
    Another live key already using the selector is refused: two keys cannot
    share one DNS name.
    """
    selector = selector.strip().lower()
    if not records.valid_selector(selector):
        raise ValidationError(f"{selector!r} is not a valid DKIM selector.")
    try:
        algorithm, key = records.normalise(public_key)
    except records.BadKey as error:
        raise ValidationError(f"That DKIM key cannot be used: {error}.") from None
    with transaction.atomic():
        locked = _locked(domain)
        existing = (DkimKey.objects.filter(domain=locked, state=State.ACTIVE, external=True)
                    .order_by("-activated", "-pk").first())
        if existing is None and DkimKey.objects.filter(domain=locked, state=State.ACTIVE,
                                                       algorithm=algorithm).exists():
            raise ValidationError(
                f"{locked.name} signs with a key generated on the mail host: generate and "
                "activate a new key instead, so the old one is retired properly.")
        clash = DkimKey.objects.filter(domain=locked, selector=selector, state__in=LIVE_STATES)
        if existing is not None:
            clash = clash.exclude(pk=existing.pk)
        if clash.exists():
            raise ValidationError({"selector": (
                f"{selector}._domainkey.{locked.name} is another key's; choose another "
                "selector.")})
        before = audit.snapshot(existing) if existing else None
        now = timezone.now()
        row = existing or DkimKey(domain=locked, state=State.ACTIVE, created=now, external=True)
        row.selector, row.public_key, row.algorithm = selector, key, algorithm
        row.bits = records.key_bits(key, algorithm)
        row.activated = now
        row.save()
        audit.record(actor=actor, action="dkim.set", obj=row, domain=locked,
                     before=before, after=audit.snapshot(row))
    return row


def remove_key(*, actor: Actor, domain: Domain) -> None:
    """Forget the domain's active key made elsewhere: its DKIM check has nothing to compare."""
    with transaction.atomic():
        locked = _locked(domain)
        row = (DkimKey.objects.filter(domain=locked, state=State.ACTIVE, external=True)
               .order_by("-activated", "-pk").first())
        if row is None:
            if DkimKey.objects.filter(domain=locked, state=State.ACTIVE).exists():
                raise ValidationError(
                    f"{domain.name}'s active key was generated on the mail host: it is "
                    "retired and revoked, not removed.")
            raise ValidationError(f"{domain.name} has no DKIM key set.")
        audit.record(actor=actor, action="dkim.remove", obj=row, domain=locked,
                     before=audit.snapshot(row))
        row.delete()


# ---------------------------------------------------------------- generating


def check_size(*, algorithm: str, bits: int | None) -> int:
    """The key size to make; refuses what the policy does not allow."""
    if algorithm == DkimKey.Algorithm.RSA:
        bits = bits or records.RSA_RECOMMENDED_BITS
        if bits not in RSA_BITS:
            raise ValidationError(
                f"An RSA key of {bits} bits is refused: use 2048 (the default), 3072 or 4096.")
        return bits
    if algorithm == DkimKey.Algorithm.ED25519:
        if bits not in (None, 0, ED25519_BITS):
            raise ValidationError("An ed25519 key is always 256 bits.")
        return ED25519_BITS
    raise ValidationError(f"Unknown key algorithm {algorithm!r}: rsa or ed25519.")


def next_selector(domain: Domain, today: datetime.date) -> str:
    """`sYYYYMMDDa`, then b, c...: dated, and never a selector the domain has used."""
    used = selectors.used_selectors(domain)
    stem = f"s{today:%Y%m%d}"
    for letter in SELECTOR_LETTERS:
        if stem + letter not in used:
            return stem + letter
    raise ValidationError(f"{domain.name} already has 26 keys dated {today}; try tomorrow.")


def generate(*, actor: Actor, domain: Domain, algorithm: str = "rsa",
             bits: int | None = None) -> DkimKey:
    """A new pending key under a new dated selector, made on the mail host by its agent.

    The row is made here, without a public key; the host's agent runs the
    helper's dkim-keygen (as Rspamd's user) and stores the public key it
    prints. ed25519 only as a second signature beside RSA: receivers that
    do not know ed25519 (many) need the RSA one.
    """
    size = check_size(algorithm=algorithm, bits=bits)
    if not privileged.has_helper():
        raise ValidationError(
            "This host has no root helper (MAILADMIN_HELPER_COMMAND is none): keys are "
            "generated on the mail host by the helper, as Rspamd's user. Generate the key "
            "elsewhere and set its public key by hand instead.")
    with transaction.atomic():
        locked = _locked(domain)
        if algorithm == DkimKey.Algorithm.ED25519 and not DkimKey.objects.filter(
                domain=locked, algorithm=DkimKey.Algorithm.RSA,
                state__in=(State.PENDING, State.PUBLISHED, State.ACTIVE)).exists():
            raise ValidationError(
                f"{locked.name} has no RSA key that is pending, published or active: an "
                "ed25519 key only signs beside an RSA one (many receivers cannot verify "
                "ed25519). Generate an RSA key first.")
        row = _new_key(actor=actor, domain=locked, algorithm=algorithm, bits=size)
    return row


def _new_key(*, actor: Actor, domain: Domain, algorithm: str, bits: int,
             action: str = "dkim.generate") -> DkimKey:
    """A pending key row of the locked `domain`, and the host asked to make it on commit."""
    now = timezone.now()
    row = DkimKey.objects.create(
        domain=domain, selector=next_selector(domain, timezone.localdate(now)),
        algorithm=algorithm, bits=bits, state=State.PENDING, created=now)
    audit.record(actor=actor, action=action, obj=row, domain=domain, after=audit.snapshot(row))
    request_generation(row)
    return row


def request_generation(key: DkimKey) -> None:
    """Ask the host's agent to make (or re-read) the key's private key, once this commits."""
    jobs.enqueue_on_commit(GENERATE_TASK, key.pk, queue=MailHost.current().queue,
                           refused=lambda: _generation_waits(key))


def _generation_waits(key: DkimKey) -> str:
    # The key stays pending: beat's rotation asks the host again for keys not made
    # (selectors.keys_awaiting_generation), so the request is kept, not lost.
    note_problem(key=key, problem="Not made yet: the task queue was not answering; the mail "
                                  "host is asked again once it answers.")
    return (f"the key {key.owner} is recorded and waits: the mail host is asked to make it "
            "once the queue answers again")


def store_public_key(*, actor: Actor, key: DkimKey, public_key: str) -> DkimKey:
    """The public key the mail host printed for a pending key; refused if it is not that key."""
    try:
        algorithm, value = records.normalise(public_key)
        bits = records.key_bits(value, algorithm)
    except records.BadKey as error:
        raise ValidationError(f"The mail host's key for {key.owner} cannot be used: "
                              f"{error}.") from None
    with transaction.atomic():
        locked, row = _locked_key(key)
        if row.public_key == value:
            return row  # a rerun read the same file
        if row.state != State.PENDING or row.external or row.public_key:
            raise ValidationError(f"{row.owner} already has its public key.")
        if (algorithm, bits) != (row.algorithm, row.bits):
            raise ValidationError(
                f"The mail host made a {algorithm} key of {bits} bits for {row.owner}, not "
                f"{row.algorithm} of {row.bits}.")
        _move(actor=actor, key=row, domain=locked, action="dkim.generated",
              public_key=value, problem="")
    return row


def request_check(*, domain: Domain) -> None:
    """Look for the domain's pending and revoked keys in DNS now (once this commits).

    Nothing changes until the check finds something, and then the check's
    own moves are audited: asking is not audited.
    """
    jobs.enqueue_on_commit(CHECK_DOMAIN_TASK, domain.pk)


def note_problem(*, key: DkimKey, problem: str, checked: datetime.datetime | None = None) -> None:
    """Why a key is not advancing (a failed generation, a record not yet right).

    A status line, like a job's error, not a change of the key: not audited.
    """
    changes: dict[str, object] = {"problem": problem[:500]}
    if checked is not None:
        changes["checked"] = checked
    DkimKey.objects.filter(pk=key.pk).update(**changes)


# ---------------------------------------------------------------- publishing


@dataclass(frozen=True)
class Observation:
    """What the domain's authoritative servers showed at `<selector>._domainkey`.

    status: "match" (every server shows this key), "revoked" (every server
    shows p= empty), "missing", "mismatch" or "unknown" (a server did not
    answer); reason: one line for the admin when it is not "match".
    """

    status: str
    reason: str = ""
    ttl: int | None = None


def record_observation(*, actor: Actor, key: DkimKey, seen: Observation,
                       now: datetime.datetime | None = None) -> DkimKey:
    """Advance a pending key once DNS has shown it for its TTL; note why it does not.

    The first time every authoritative server shows the record starts the
    clock (audited); a later look that no longer shows it stops it. Keys in
    other states are not moved here (a revoked key's removal needs the host).
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked, row = _locked_key(key)
        if row.state != State.PENDING or not row.public_key:
            return row
        if seen.status != "match":
            changes: dict[str, object] = {"problem": seen.reason[:500], "checked": now}
            if row.published_seen_at is not None:
                # The clock restarts: resolvers may have cached the record's absence.
                changes["published_seen_at"] = None
                _move(actor=actor, key=row, domain=locked, action="dkim.unseen", **changes)
            else:
                note_problem(key=row, problem=seen.reason, checked=now)
                row.refresh_from_db()
            return row
        ttl = max(seen.ttl or 0, row.ttl_seen or 0)
        if row.published_seen_at is None:
            _move(actor=actor, key=row, domain=locked, action="dkim.seen",
                  published_seen_at=now, ttl_seen=ttl, checked=now,
                  problem=f"Seen in DNS; published once it has been there {ttl} s (its TTL).")
        elif now - row.published_seen_at >= datetime.timedelta(seconds=ttl):
            _move(actor=actor, key=row, domain=locked, action="dkim.published",
                  state=State.PUBLISHED, published=now, ttl_seen=ttl, checked=now, problem="")
        else:
            DkimKey.objects.filter(pk=row.pk).update(checked=now, ttl_seen=ttl)
            row.refresh_from_db()
    return row


# ---------------------------------------------------------------- signing and retiring


def activate(*, actor: Actor, key: DkimKey) -> DkimKey:
    """published -> active; the domain's previous active key of the same algorithm -> retiring.

    Only a published key ever signs; an ed25519 key only beside an active RSA one.
    """
    with transaction.atomic():
        locked, row = _locked_key(key)
        _refuse(row, "activated", (State.PUBLISHED,))
        if row.algorithm == DkimKey.Algorithm.ED25519 and not DkimKey.objects.filter(
                domain=locked, state=State.ACTIVE, algorithm=DkimKey.Algorithm.RSA).exists():
            raise ValidationError(
                f"{locked.name} has no active RSA key: an ed25519 key only signs beside one.")
        now = timezone.now()
        for previous in DkimKey.objects.filter(domain=locked, state=State.ACTIVE,
                                               algorithm=row.algorithm):
            _move(actor=actor, key=previous, domain=locked, action="dkim.retire",
                  state=State.RETIRING, retiring_since=now)
        _move(actor=actor, key=row, domain=locked, action="dkim.activate",
              state=State.ACTIVE, activated=now)
        request_signing_apply(actor=actor)
    return row


def retire(*, actor: Actor, key: DkimKey) -> DkimKey:
    """active -> retiring, with no successor (stop signing with this key).

    The domain's last active RSA key is not retired while an ed25519 key
    signs: that one never signs alone.
    """
    with transaction.atomic():
        locked, row = _locked_key(key)
        _refuse(row, "retired", (State.ACTIVE,))
        if row.algorithm == DkimKey.Algorithm.RSA:
            others = DkimKey.objects.filter(domain=locked, state=State.ACTIVE).exclude(pk=row.pk)
            if (others.filter(algorithm=DkimKey.Algorithm.ED25519).exists()
                    and not others.filter(algorithm=DkimKey.Algorithm.RSA).exists()):
                raise ValidationError(
                    f"{row.owner} is {locked.name}'s only active RSA key and an ed25519 key "
                    "signs beside it: retire the ed25519 key first.")
        _move(actor=actor, key=row, domain=locked, action="dkim.retire",
              state=State.RETIRING, retiring_since=timezone.now())
        request_signing_apply(actor=actor)
    return row


def grace_ends(key: DkimKey) -> datetime.datetime | None:
    """When a retiring key may be revoked: its grace period after it stopped signing."""
    if key.retiring_since is None:
        return None
    return key.retiring_since + datetime.timedelta(days=settings.MAILADMIN_DKIM_RETIRE_GRACE_DAYS)


def revoke(*, actor: Actor, key: DkimKey, now: datetime.datetime | None = None) -> DkimKey:
    """retiring -> revoked once the grace period is over; pending or published at any time.

    A retiring key signed mail that may still be queued or unverified; a key
    that never signed has nothing to wait for. The admin then publishes the
    revoked form (p= empty); the publish check removes the key once DNS shows it.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked, row = _locked_key(key)
        _refuse(row, "revoked", (State.PENDING, State.PUBLISHED, State.RETIRING))
        if row.state == State.RETIRING:
            ends = grace_ends(row)
            if ends is not None and now < ends:
                raise ValidationError(
                    f"{row.owner} stopped signing on {row.retiring_since:%Y-%m-%d %H:%M}: mail "
                    f"signed with it may still be verified until {ends:%Y-%m-%d %H:%M} "
                    f"(MAILADMIN_DKIM_RETIRE_GRACE_DAYS={settings.MAILADMIN_DKIM_RETIRE_GRACE_DAYS}).")
        _move(actor=actor, key=row, domain=locked, action="dkim.revoke",
              state=State.REVOKED, revoked=now, problem="")
    return row


def request_removal(*, actor: Actor, key: DkimKey, seen: Observation) -> bool:
    """A revoked key whose revoked form DNS shows: its file goes (through the host's agent).

    Whether removal was asked for. Keys made elsewhere have no file: they go at once.
    """
    if key.state != State.REVOKED:
        return False
    if seen.status != "revoked":
        note_problem(key=key, problem=f"Publish the revoked form (p= empty): {seen.reason}",
                     checked=timezone.now())
        return False
    if key.external:
        mark_gone(actor=actor, key=key)
    else:
        request_file_removal(key)
    return True


def mark_gone(*, actor: Actor, key: DkimKey) -> DkimKey:
    """revoked -> gone: the private key file is removed (or there never was one here)."""
    with transaction.atomic():
        if key.domain_id is None:
            # A deleted domain's key: no domain row to lock, and its audit row
            # goes by the name alone (superadmins only: a later namesake must not read it).
            row = DkimKey.objects.select_for_update().get(pk=key.pk)
            where: Domain | str = row.deleted_domain
        else:
            where, row = _locked_key(key)
        if row.state == State.GONE:
            return row
        _refuse(row, "marked gone", (State.REVOKED,))
        _move(actor=actor, key=row, domain=where, action="dkim.gone",
              state=State.GONE, removed=timezone.now(), problem="")
    return row


# ---------------------------------------------------------------- a deleted domain


def keep_keys_of_deleted_domain(*, actor: Actor, domain: Domain) -> None:
    """The domain is being deleted (domains' delete_domain calls this inside its
    transaction, registered by dkim/apps.py): its keys stay as history.

    Each key loses its domain and keeps its name; one made here that is not
    gone yet becomes revoked and its file is removed by the host's agent
    (helper dkim-remove) once the signing configuration without it is
    applied; one made elsewhere has no file and is gone. If one of them
    signed, the configuration is applied once this commits; an active key
    counts as having stopped signing now, so the rotation tick applies again
    if that apply is lost, and removes the files only after one went through.
    """
    now = timezone.now()
    keys = list(DkimKey.objects.select_for_update().filter(domain=domain).order_by("pk"))
    signed = False
    for key in keys:
        changes: dict[str, object] = {"domain_id": None, "deleted_domain": domain.name}
        if key.state == State.ACTIVE and not key.external:
            signed = True
            changes["retiring_since"] = now
        if key.state != State.GONE and key.external:
            changes.update(state=State.GONE, removed=now, problem="")
        elif key.state != State.GONE:
            changes.update(state=State.REVOKED, revoked=key.revoked or now,
                           problem="The domain was deleted: the key file is removed once "
                           "the signing configuration without it is applied.")
        _move(actor=actor, key=key, domain=domain, action="dkim.domain_deleted", **changes)
    if signed:
        request_signing_apply(actor=actor)
    for key in keys:
        if key.state == State.REVOKED:
            request_file_removal(key)


def request_file_removal(key: DkimKey) -> None:
    """Ask the host's agent to remove a revoked key's file, once this commits."""
    jobs.enqueue_on_commit(REMOVE_FILE_TASK, key.pk, queue=MailHost.current().queue)


def signing_config_applied() -> bool:
    """Whether the host's applied signing configuration lists exactly the keys that sign now
    (always, when the panel renders none: no milter or no root helper)."""
    if not settings.MAILADMIN_RSPAMD_MILTER or not privileged.has_helper():
        return True
    return not selectors.signing_config_outdated(MailHost.current())


# ---------------------------------------------------------------- into Rspamd


def request_signing_apply(*, actor: Actor) -> None:
    """Once this commits: the host renders and applies its configuration, whose
    dkim_signing.conf lists the active keys (mailhost.render).

    Nothing when no Rspamd files are rendered (no milter) or there is no root
    helper to install them. An apply already queued renders after this
    commits and is enough; one already running may have rendered before it:
    the rotation tick (dkim.rotation) sees that the last apply started before
    the change and asks again, so the change is applied exactly once more.
    """
    if not settings.MAILADMIN_RSPAMD_MILTER or not privileged.has_helper():
        return
    transaction.on_commit(lambda: _request_apply(actor))


def _request_apply(actor: Actor) -> None:
    # One queued or running is refused here: see request_signing_apply.
    with contextlib.suppress(ValidationError):
        apply.request_apply(actor=actor, check_only=False)


# ---------------------------------------------------------------- rotation


def rotation_days(domain: Domain) -> int:
    """The domain's rotation interval in days; 0: never rotated unattended."""
    row = DkimRotation.objects.filter(domain=domain).first()
    return settings.MAILADMIN_DKIM_ROTATE_DAYS if row is None else row.days


def set_rotation(*, actor: Actor, domain: Domain, days: int | None) -> None:
    """A domain's own rotation interval (days, at least 14), 0 for off, None for the default."""
    if days is not None and days > MAX_ROTATE_DAYS:
        raise ValidationError(f"A key is rotated at least every {MAX_ROTATE_DAYS} days "
                              "(ten years); 0 or off turns unattended rotation off.")
    if days is not None and days != 0 and days < MIN_ROTATE_DAYS:
        raise ValidationError(
            f"A key is rotated every {MIN_ROTATE_DAYS} days at the most often (the old one "
            f"stays in DNS {settings.MAILADMIN_DKIM_RETIRE_GRACE_DAYS} days after it stops "
            "signing); 0 or off turns unattended rotation off.")
    with transaction.atomic():
        locked = _locked(domain)
        row = DkimRotation.objects.filter(domain=locked).first()
        before = {"days": row.days if row else None}
        if (row.days if row else None) == days:
            return
        if days is None:
            if row is not None:
                row.delete()
        elif row is None:
            DkimRotation.objects.create(domain=locked, days=days)
        else:
            row.days = days
            row.save()
        audit.record(actor=actor, action="dkim.rotation", obj=locked, domain=locked,
                     before=before, after={"days": days})


def rotate(*, actor: Actor, domain: Domain, algorithms: tuple[str, ...] | None = None
           ) -> list[DkimKey]:
    """A new pending key for each algorithm the domain signs with (RSA when none).

    A key of that algorithm already pending or published is a rotation under
    way: none is added beside it (a rerun, a second click or the beat after
    an agent that died, never makes a duplicate). ValidationError when every
    algorithm already has one. The rotation tick then publishes, activates,
    applies, revokes and removes, one safe step at a time.
    """
    if not privileged.has_helper():
        raise ValidationError(
            "This host has no root helper (MAILADMIN_HELPER_COMMAND is none): keys are "
            "generated on the mail host by the helper, so nothing can be rotated here.")
    with transaction.atomic():
        locked = _locked(domain)
        active = DkimKey.objects.filter(domain=locked, state=State.ACTIVE)
        wanted = algorithms or tuple(sorted(
            set(active.values_list("algorithm", flat=True)) or {DkimKey.Algorithm.RSA},
            reverse=True))  # rsa before ed25519
        made, under_way = [], []
        for algorithm in wanted:
            ahead = (DkimKey.objects.filter(domain=locked, algorithm=algorithm,
                                            state__in=(State.PENDING, State.PUBLISHED))
                     .order_by("-pk").first())
            if ahead is not None:
                under_way.append(ahead)
                continue
            current = active.filter(algorithm=algorithm).order_by("-activated", "-pk").first()
            bits = current.bits if current and not current.external and current.bits else None
            made.append(_new_key(actor=actor, domain=locked, algorithm=algorithm,
                                 bits=check_size(algorithm=algorithm, bits=bits),
                                 action="dkim.rotate"))
        if not made:
            raise ValidationError(
                f"A rotation of {locked.name} is already under way: "
                + ", ".join(f"{k.owner} is {k.state}" for k in under_way) + ".")
    return made
