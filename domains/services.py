"""Every write to domains, mailboxes, aliases and alias domains.

Each function validates, runs in one transaction and writes an audit row.
Limits are checked while holding a row lock on the domain, so parallel
creations in one domain are serialised and can never overshoot a limit.
Views, tasks and commands call these; nothing else saves these models.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Sum
from django.utils import timezone

from core import audit
from core.actor import ELSEWHERE, MAILBOX_ACCOUNT_PREFIX, Actor
from core.env import GENERATED_PASSWORD_LENGTH, generated_password
from core.models import AuditEntry
from domains import passwords
from domains.models import Alias, AliasDomain, Domain, KeptMaildir, Mailbox
from domains.validators import (
    domain_of,
    format_size,
    normalize_address,
    normalize_domain,
    normalize_hosted_address,
    parse_size,
    split_address,
)

DESCRIPTION_MAX = 255
NAME_MAX = 255
DESTINATIONS_MAX = 100

_M = TypeVar("_M", bound=models.Model)

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------- domains


def create_domain(
    *,
    actor: Actor,
    name: str,
    description: str = "",
    max_mailboxes: int = 0,
    max_aliases: int = 0,
    max_quota: int | str = 0,
    default_quota: int | str = 0,
    active: bool = True,
    kept_maildirs: str = "",
) -> Domain:
    """Create a domain. `kept_maildirs`: what becomes of the Maildirs still kept
    from an earlier domain of this name, which must be settled here (refused
    while there are some and it is ''): "reserve" makes them this domain's
    (their addresses stay refused until a superadmin reuses or forgets each),
    "remove" records them as removed from the mail host.
    """
    domain_name = normalize_domain(name)
    limits = _limits(max_mailboxes, max_aliases, max_quota, default_quota)
    description = _text(description, DESCRIPTION_MAX, "The description")
    if kept_maildirs not in {"", *KEPT_MAILDIR_CHOICES}:
        raise ValidationError("Earlier kept Maildirs: choose reserve or remove.")
    with transaction.atomic():
        if AliasDomain.objects.filter(name=domain_name).exists():
            raise ValidationError(f"{domain_name} is already an alias domain.")
        if Domain.objects.filter(name=domain_name).exists():
            raise ValidationError(f"The domain {domain_name} already exists.")
        earlier = list(KeptMaildir.objects.select_for_update().filter(
            address__endswith=f"@{domain_name}", removed_at=None, reused_at=None))
        if earlier and not kept_maildirs:
            raise ValidationError(
                f"An earlier {domain_name} left {_plural(len(earlier), 'kept Maildir')} on "
                "disk: choose to reserve their addresses (refused until a superadmin reuses "
                "or forgets each) or to record them as removed from the mail host.",
                code="earlier_kept_maildirs")
        domain = Domain(name=domain_name, description=description, active=active, **limits)
        _insert(domain, f"The domain {domain_name} already exists.")
        audit.record(actor=actor, action="domain.create", obj=domain, domain=domain,
                     after=audit.snapshot(domain))
        if earlier:
            _settle_earlier_kept_maildirs(actor, domain, earlier, kept_maildirs)
    return domain


KEPT_MAILDIR_CHOICES = ("reserve", "remove")


def _settle_earlier_kept_maildirs(actor: Actor, domain: Domain, rows: list[KeptMaildir],
                                  choice: str) -> None:
    """Reserve or remove another domain's kept Maildirs; audited for superadmins only
    (the domain's name, not the domain: the addresses are a previous tenant's)."""
    ids = [row.pk for row in rows]
    if choice == "reserve":
        KeptMaildir.objects.filter(pk__in=ids).update(domain_ref=domain.pk)
        audit.record(actor=actor, action="mailbox.maildirs_reserved", obj=domain,
                     domain=domain.name,
                     after={"addresses": sorted(row.address for row in rows)})
        return
    _mark_kept_removed(actor, rows, domain.name)


def _mark_kept_removed(actor: Actor, rows: list[KeptMaildir], domain_name: str) -> None:
    """Record these kept Maildirs as gone from the mail host, one audit row each
    under the domain's name only (superadmins see them)."""
    KeptMaildir.objects.filter(pk__in=[row.pk for row in rows]).update(removed_at=timezone.now())
    AuditEntry.objects.bulk_create([
        audit.entry(actor=actor, action="mailbox.maildir_removed", obj=row, domain=domain_name,
                    after={"path": row.path, "deleted_at": row.deleted_at.isoformat()})
        for row in rows])


def update_domain(
    *,
    actor: Actor,
    domain: Domain,
    description: str | None = None,
    max_mailboxes: int | None = None,
    max_aliases: int | None = None,
    max_quota: int | str | None = None,
    default_quota: int | str | None = None,
) -> Domain:
    with transaction.atomic():
        locked = _lock_domain(domain)
        before = audit.snapshot(locked)
        if description is not None:
            locked.description = _text(description, DESCRIPTION_MAX, "The description")
        limits = _limits(
            locked.max_mailboxes if max_mailboxes is None else max_mailboxes,
            locked.max_aliases if max_aliases is None else max_aliases,
            locked.max_quota if max_quota is None else max_quota,
            locked.default_quota if default_quota is None else default_quota,
        )
        usage = domain_usage(locked)
        if limits["max_mailboxes"] and usage.mailboxes > limits["max_mailboxes"]:
            raise ValidationError(
                f"{locked.name} has {_plural(usage.mailboxes, 'mailbox')}; the limit cannot "
                "be lower."
            )
        if limits["max_aliases"] and usage.aliases > limits["max_aliases"]:
            raise ValidationError(
                f"{locked.name} has {_plural(usage.aliases, 'alias')}; the limit cannot be lower."
            )
        if limits["max_quota"]:
            if usage.unlimited_mailboxes:
                raise ValidationError(
                    f"{locked.name} has {usage.unlimited_mailboxes} mailboxes without a quota; "
                    "give them one before limiting the domain's total."
                )
            if usage.quota_total > limits["max_quota"]:
                raise ValidationError(
                    f"{locked.name}'s mailboxes already hold {format_size(usage.quota_total)} "
                    "of quota; the total cannot be lower."
                )
        for key, value in limits.items():
            setattr(locked, key, value)
        locked.save()
        _audit_change(actor, "domain.update", locked, locked, before)
    return locked


def set_domain_active(*, actor: Actor, domain: Domain, active: bool) -> Domain:
    """Disabling stops delivery and login for the whole domain; the rows stay."""
    with transaction.atomic():
        locked = _lock_domain(domain)
        _switch(actor, "domain", locked, active, locked)
        if not active:
            _end_sessions(locked.mailboxes.values_list("pk", flat=True))
    return locked


def delete_domain(*, actor: Actor, domain: Domain, force: bool = False) -> list[str]:
    """Delete a domain; with `force`, its mailboxes, aliases and alias domains too.

    Returns the Maildir paths left on disk for the deleted mailboxes.
    """
    with transaction.atomic():
        locked = _lock_domain(domain)
        mailbox_count = locked.mailboxes.count()
        if mailbox_count and not force:
            raise ValidationError(
                f"{locked.name} still has {_plural(mailbox_count, 'mailbox')}; delete them first "
                "or force the deletion (their mail stays on disk)."
            )
        kept: list[str] = []
        rows: list[AuditEntry] = []
        now = timezone.now()
        ledger: list[KeptMaildir] = []
        for mailbox in locked.mailboxes.all():
            path = maildir_path(mailbox.email)
            kept.append(path)
            ledger.append(KeptMaildir(address=mailbox.email, domain_ref=locked.pk, path=path,
                                      deleted_at=now))
            rows.append(audit.entry(actor=actor, action="mailbox.delete", obj=mailbox,
                                    domain=locked, before=audit.snapshot(mailbox),
                                    after={"maildir_kept": path}))
        for alias in locked.aliases.all():
            rows.append(audit.entry(actor=actor, action="alias.delete", obj=alias,
                                    domain=locked, before=audit.snapshot(alias)))
        for alias_domain in locked.alias_domains.all():
            rows.append(audit.entry(actor=actor, action="aliasdomain.delete", obj=alias_domain,
                                    domain=locked, before=audit.snapshot(alias_domain)))
        rows.append(audit.entry(actor=actor, action="domain.delete", obj=locked,
                                domain=locked, before=audit.snapshot(locked),
                                after={"forced": force, "maildirs_kept": len(kept)}))
        AuditEntry.objects.bulk_create(rows)
        KeptMaildir.objects.bulk_create(ledger, batch_size=2000)
        gone = set(locked.mailboxes.values_list("email", flat=True))
        gone |= {a.source for a in locked.aliases.all() if not a.is_catchall}
        _remove_destinations(actor, gone, contains=f"@{locked.name}", home=locked,
                             exclude_domain=locked)
        locked.alias_domains.all().delete()
        locked.aliases.all().delete()
        _end_sessions(locked.mailboxes.values_list("pk", flat=True))
        locked.mailboxes.all().delete()
        locked.delete()
    return kept


# ---------------------------------------------------------------- mailboxes


def create_mailbox(
    *,
    actor: Actor,
    email: str,
    password: str | None = None,
    password_hash: str | None = None,
    name: str = "",
    quota: int | str | None = None,
    active: bool = True,
    reuse_kept_maildir: bool = False,
) -> Mailbox:
    """Create a mailbox from a plaintext password or an imported hash (exactly one).

    An address whose earlier mailbox's Maildir is still kept is refused,
    unless `reuse_kept_maildir` (a superadmin's explicit choice) hands that
    mail to the new mailbox.
    """
    address = normalize_hosted_address(email, mailbox=True)
    hashed = _password_value(password, password_hash, address)
    name = _text(name, NAME_MAX, "The name")
    wanted_quota = None if quota is None else parse_size(quota)
    with transaction.atomic():
        domain = _lock_domain_of(address)
        _check_address_free(address)
        reused = _claim_kept_maildir(address, domain, reuse=reuse_kept_maildir)
        usage = domain_usage(domain)
        mailbox_quota = domain.default_quota if wanted_quota is None else wanted_quota
        _check_mailbox_limits(domain, usage, adding=1, quota=mailbox_quota)
        mailbox = Mailbox(domain=domain, email=address, password=hashed, name=name,
                          quota=mailbox_quota, active=active, password_changed=timezone.now())
        _insert(mailbox, f"{address} already exists.")
        audit.record(actor=actor, action="mailbox.create", obj=mailbox, domain=domain,
                     after={**audit.snapshot(mailbox),
                            **({"maildir_reused": reused} if reused else {})})
    return mailbox


@dataclass(frozen=True)
class MailboxImport:
    email: str
    password_hash: str
    name: str = ""
    quota: int | str | None = None


def import_mailboxes(
    *, actor: Actor, domain: Domain, rows: Sequence[MailboxImport], batch_size: int = 2000
) -> list[Mailbox]:
    """Create many mailboxes with pre-hashed passwords: all of them or none.

    Validation runs over every row first and reports every bad row at once.
    """
    errors: list[str] = []
    mailboxes: list[Mailbox] = []
    seen: set[str] = set()
    now = timezone.now()
    for number, row in enumerate(rows, start=1):
        try:
            local, domain_part = split_address(normalize_hosted_address(row.email, mailbox=True))
            address = f"{local}@{domain_part}"
            if domain_part != domain.name:
                raise ValidationError(f"{address} is not in {domain.name}.")
            if address in seen:
                raise ValidationError(f"{address} appears twice.")
            seen.add(address)
            mailboxes.append(Mailbox(
                domain=domain, email=address, password=passwords.normalize_hash(row.password_hash),
                name=_text(row.name, NAME_MAX, "The name"),
                quota=domain.default_quota if row.quota is None else parse_size(row.quota),
                active=True, password_changed=now,
            ))
        except ValidationError as exc:
            errors.append(f"row {number}: {' '.join(exc.messages)}")
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        locked = _lock_for_import(domain, seen)
        kept = _kept_addresses(seen, locked)
        if kept:
            raise ValidationError([KeptMaildir.refusal(address) for address in sorted(kept)])
        usage = domain_usage(locked)
        _check_mailbox_limits(locked, usage, adding=len(mailboxes),
                              quota=sum(m.quota for m in mailboxes),
                              any_unlimited=any(m.quota == 0 for m in mailboxes))
        _insert_many(actor, "mailbox.import", locked, mailboxes, "email", batch_size)
    return mailboxes


def set_mailbox_password(
    *, actor: Actor, mailbox: Mailbox, password: str | None = None, password_hash: str | None = None
) -> Mailbox:
    hashed = _password_value(password, password_hash, mailbox.email)
    with transaction.atomic():
        locked = _lock(Mailbox, mailbox.pk, str(mailbox))
        locked.password = hashed
        locked.password_changed = timezone.now()
        locked.save(update_fields=["password", "password_changed", "modified"])
        audit.record(actor=actor, action="mailbox.password", obj=locked,
                     domain=mailbox.domain, after={"password_changed": True})
        _end_sessions([locked.pk])
    return locked


def change_own_password(*, mailbox: Mailbox, current: str, new: str) -> Mailbox:
    """A mailbox user's own change: the current password, then the policy."""
    if not passwords.verify_password(current, mailbox.password):
        raise ValidationError({"current": "That is not your current password."})
    problems = password_policy_problems(new, mailbox.email, current=current)
    if problems:
        raise ValidationError({"new": problems})
    return set_mailbox_password(actor=Actor.mailbox(mailbox.email), mailbox=mailbox, password=new)


GENERATE_ATTEMPTS = 20


def generate_password(*, email: str) -> str:
    """A generated password the policy takes (a random one may contain a short local part)."""
    length = max(GENERATED_PASSWORD_LENGTH, settings.MAILADMIN_PASSWORD_MIN_LENGTH)
    for _ in range(GENERATE_ATTEMPTS):
        password = generated_password(length)
        if not password_policy_problems(password, email):
            return password
    raise ValidationError({"password": "No generated password met the password policy; "
                                       "type one instead."})


def password_policy_problems(password: str, email: str, *, current: str = "") -> list[str]:
    """Why a new mailbox password is refused; empty when it is acceptable."""
    problems: list[str] = []
    minimum = settings.MAILADMIN_PASSWORD_MIN_LENGTH
    if len(password) < minimum:
        problems.append(f"Use at least {minimum} characters.")
    local = email.rsplit("@", 1)[0].lower()
    if len(local) >= 3 and local in password.lower():
        problems.append("Do not put your address's name in your password.")
    if current and password == current:
        problems.append("Choose a password different from the current one.")
    if not passwords.can_hash(password):
        problems.append("Use at most 72 bytes, and no control characters.")
    return problems


def _policy_hash(password: str, email: str) -> str:
    """The hash of a plaintext that meets the policy, whoever typed it (admin, user, file)."""
    if passwords.can_hash(password):  # else hash_password says exactly why it cannot
        problems = password_policy_problems(password, email)
        if problems:
            raise ValidationError({"password": problems})
    return passwords.hash_password(password)


def update_mailbox(
    *, actor: Actor, mailbox: Mailbox, name: str | None = None, quota: int | str | None = None,
    active: bool | None = None, password: str | None = None,
) -> Mailbox:
    """Change any of name, quota, active and password: all of them or, on a refusal, none."""
    hashed = None if password is None else _policy_hash(password, mailbox.email)
    with transaction.atomic():
        domain = _lock_domain(mailbox.domain)
        locked = _lock(Mailbox, mailbox.pk, str(mailbox))
        before = audit.snapshot(locked)
        if name is not None:
            locked.name = _text(name, NAME_MAX, "The name")
        if quota is not None:
            new_quota = parse_size(quota)
            usage = domain_usage(domain)
            _check_quota(domain, usage.quota_total - locked.quota, new_quota,
                         any_unlimited=new_quota == 0)
            locked.quota = new_quota
        locked.save()
        _audit_change(actor, "mailbox.update", locked, domain, before)
        if active is not None:
            _switch(actor, "mailbox", locked, active, domain)
        if hashed is not None:
            locked.password = hashed
            locked.password_changed = timezone.now()
            locked.save(update_fields=["password", "password_changed", "modified"])
            audit.record(actor=actor, action="mailbox.password", obj=locked,
                         domain=domain, after={"password_changed": True})
        if hashed is not None or active is False:
            _end_sessions([locked.pk])
    return locked


def set_mailbox_active(*, actor: Actor, mailbox: Mailbox, active: bool) -> Mailbox:
    with transaction.atomic():
        locked = _lock(Mailbox, mailbox.pk, str(mailbox))
        _switch(actor, "mailbox", locked, active, mailbox.domain)
        if not active:
            _end_sessions([locked.pk])
    return locked


def delete_mailbox(*, actor: Actor, mailbox: Mailbox) -> str:
    """Delete the row; the Maildir stays on disk. Returns its path.

    The address is also taken out of every alias that delivered to it (an
    alias left with no destination is deleted), each change audited.
    """
    with transaction.atomic():
        domain = _lock_domain(mailbox.domain)
        locked = _lock(Mailbox, mailbox.pk, str(mailbox))
        path = maildir_path(locked.email)
        _remove_destinations(actor, {locked.email}, contains=locked.email, home=domain)
        audit.record(actor=actor, action="mailbox.delete", obj=locked, domain=domain,
                     before=audit.snapshot(locked), after={"maildir_kept": path})
        KeptMaildir.objects.create(address=locked.email, domain_ref=domain.pk, path=path,
                                   deleted_at=timezone.now())
        _end_sessions([locked.pk])
        locked.delete()
    return path


def forget_kept_maildir(*, actor: Actor, address: str) -> list[str]:
    """Record that the kept Maildir of `address` is gone from the mail host.

    The address can then become a mailbox for a new person. Nothing on disk
    is touched here: whoever removed the directory says so. The audit row
    carries the domain's name only (superadmins see it): the path belongs to
    a previous mailbox, perhaps of a previous domain of that name.
    """
    target = normalize_address(address)
    with transaction.atomic():
        rows = list(KeptMaildir.objects.select_for_update()
                    .filter(address=target, removed_at=None, reused_at=None))
        if not rows:
            raise ValidationError(f"No kept Maildir is recorded for {target}.")
        _mark_kept_removed(actor, rows, domain_of(target))
    return [row.path for row in rows]


def _end_sessions(mailbox_ids: Iterable[int]) -> None:
    """End every panel session of these mailboxes, in the caller's transaction.

    Django keeps a session only while it carries a hash of its account's
    `password` field; a mailbox's session account has an unusable one, so
    giving it a new random unusable value ends every session opened before.
    (A user changing their own password keeps the current session with
    update_session_auth_hash in the view.)
    """
    ids = list(mailbox_ids)
    for part in _in_chunks(ids):
        User.objects.filter(username__in=[f"{MAILBOX_ACCOUNT_PREFIX}{pk}" for pk in part]
                            ).update(password=make_password(None))


def verify_mailbox_login(*, email: str, password: str) -> Mailbox | None:
    """The mailbox if the password is right and it may sign in; rehashes old schemes."""
    try:
        address = normalize_address(email)
    except ValidationError:
        return None
    mailbox = (Mailbox.objects.select_related("domain")
               .filter(email=address, active=True, domain__active=True).first())
    if mailbox is None:
        # Spend the time of a real check, so timing does not tell which addresses exist.
        passwords.verify_password(password, _dummy_hash())
        return None
    too_costly = passwords.cost_problem(mailbox.password)
    if too_costly:
        # Planted (or adopted) before the bounds: never run it, it would hold
        # this worker for as long as its cost says. The caller counts and
        # logs the failure like any other.
        logger.warning("Refused to verify the stored hash of %s: %s", address, too_costly)
        passwords.verify_password(password, _dummy_hash())
        return None
    if not passwords.verify_password(password, mailbox.password):
        return None
    if passwords.needs_rehash(mailbox.password) and passwords.can_hash(password):
        with transaction.atomic():
            locked = _lock(Mailbox, mailbox.pk, str(mailbox))
            old_scheme, _ = passwords.split_hash(locked.password)
            locked.password = passwords.hash_password(password)
            locked.save(update_fields=["password"])
            audit.record(actor=Actor.mailbox(address), action="mailbox.rehash", obj=locked,
                         domain=mailbox.domain,
                         before={"scheme": old_scheme},
                         after={"scheme": passwords.default_scheme()})
        mailbox.password = locked.password
    return mailbox


@functools.cache
def _dummy_hash() -> str:
    return passwords.hash_password(secrets.token_urlsafe(16))


def maildir_path(email: str) -> str:
    """Home of a mailbox on the mail host; the rendered Dovecot config uses the same."""
    local, domain = email.rsplit("@", 1)
    return str(PurePosixPath(settings.MAILADMIN_VMAIL_DIR) / domain / local)


# ---------------------------------------------------------------- aliases


def create_alias(
    *, actor: Actor, source: str, destinations: str | Iterable[str], active: bool = True,
    checked_domains: Collection[str] | None,
) -> Alias:
    """`checked_domains`: the actor's reach, see _is_checked; None for every domain."""
    address = normalize_hosted_address(source, mailbox=False, allow_catchall=True)
    targets = _parse_destinations(destinations)
    with transaction.atomic():
        domain = _lock_domain_of(address)
        _check_address_free(address)
        _check_destinations(address, targets, checked_domains)
        usage = domain_usage(domain)
        if domain.max_aliases and usage.aliases + 1 > domain.max_aliases:
            raise ValidationError(
                f"{domain.name} has reached its limit of {domain.max_aliases} aliases."
            )
        alias = Alias(domain=domain, source=address, destinations=",".join(targets),
                      active=active)
        _insert(alias, f"{address} already exists.")
        audit.record(actor=actor, action="alias.create", obj=alias, domain=domain,
                     after=audit.snapshot(alias))
    return alias


def update_alias(
    *, actor: Actor, alias: Alias, destinations: str | Iterable[str] | None = None,
    active: bool | None = None, checked_domains: Collection[str] | None,
) -> Alias:
    """`checked_domains`: the actor's reach, see _is_checked; None for every domain."""
    with transaction.atomic():
        domain = _lock_domain(alias.domain)
        locked = _lock(Alias, alias.pk, str(alias))
        before = audit.snapshot(locked)
        if destinations is not None:
            targets = _parse_destinations(destinations)
            _check_destinations(locked.source, targets, checked_domains)
            locked.destinations = ",".join(targets)
        if active is not None:
            locked.active = active
        locked.save()
        _audit_change(actor, "alias.update", locked, domain, before)
    return locked


def delete_alias(*, actor: Actor, alias: Alias) -> None:
    with transaction.atomic():
        domain = _lock_domain(alias.domain)
        locked = _lock(Alias, alias.pk, str(alias))
        if not locked.is_catchall:
            # Aliases that forwarded to this one would point at nothing.
            _remove_destinations(actor, {locked.source}, contains=locked.source, home=domain)
        audit.record(actor=actor, action="alias.delete", obj=locked, domain=domain,
                     before=audit.snapshot(locked))
        locked.delete()


# ---------------------------------------------------------------- alias domains


def create_alias_domain(
    *, actor: Actor, name: str, target: str | Domain, active: bool = True
) -> AliasDomain:
    alias_name = normalize_domain(name)
    target_name = target.name if isinstance(target, Domain) else normalize_domain(target)
    if alias_name == target_name:
        raise ValidationError(f"{alias_name} cannot be an alias of itself.")
    with transaction.atomic():
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
        audit.record(actor=actor, action="aliasdomain.create", obj=alias_domain,
                     domain=target_domain, after=audit.snapshot(alias_domain))
    return alias_domain


def set_alias_domain_active(*, actor: Actor, alias_domain: AliasDomain,
                            active: bool) -> AliasDomain:
    with transaction.atomic():
        locked = _lock(AliasDomain, alias_domain.pk, str(alias_domain))
        _switch(actor, "aliasdomain", locked, active, locked.target)
    return locked


def delete_alias_domain(*, actor: Actor, alias_domain: AliasDomain) -> None:
    with transaction.atomic():
        locked = _lock(AliasDomain, alias_domain.pk, str(alias_domain))
        audit.record(actor=actor, action="aliasdomain.delete", obj=locked,
                     domain=locked.target, before=audit.snapshot(locked))
        locked.delete()


# ---------------------------------------------------------------- usage


@dataclass(frozen=True)
class DomainUsage:
    mailboxes: int
    aliases: int
    quota_total: int
    unlimited_mailboxes: int


def domain_usage(domain: Domain) -> DomainUsage:
    totals = Mailbox.objects.filter(domain=domain).aggregate(quota=Sum("quota"))
    return DomainUsage(
        mailboxes=Mailbox.objects.filter(domain=domain).count(),
        aliases=Alias.objects.filter(domain=domain).count(),
        quota_total=totals["quota"] or 0,
        unlimited_mailboxes=Mailbox.objects.filter(domain=domain, quota=0).count(),
    )


# ---------------------------------------------------------------- helpers


def _lock(model: type[_M], pk: int, name: str) -> _M:
    """The row, locked for this transaction; a clear error if it was deleted meanwhile."""
    try:
        return model._default_manager.select_for_update().get(pk=pk)
    except model.DoesNotExist:  # type: ignore[attr-defined]
        raise ValidationError(f"{name} no longer exists.") from None


def _lock_domain(domain: Domain) -> Domain:
    try:
        return Domain.objects.select_for_update().get(pk=domain.pk)
    except Domain.DoesNotExist:
        raise ValidationError(f"The domain {domain.name} no longer exists.") from None


def _lock_domain_by_name(name: str) -> Domain:
    try:
        return Domain.objects.select_for_update().get(name=name)
    except Domain.DoesNotExist:
        alias_domain = AliasDomain.objects.select_related("target").filter(name=name).first()
        if alias_domain is not None:
            raise ValidationError(
                f"{name} is an alias domain of {alias_domain.target.name}; addresses live in "
                f"{alias_domain.target.name}."
            ) from None
        raise ValidationError(f"{name} is not a domain of this server.") from None


def _lock_domain_of(address: str) -> Domain:
    return _lock_domain_by_name(domain_of(address))


def _check_address_free(address: str) -> None:
    if Mailbox.objects.filter(email=address).exists():
        raise ValidationError(f"{address} is already a mailbox.")
    if Alias.objects.filter(source=address).exists():
        what = "the catch-all" if address.startswith("@") else "an alias"
        raise ValidationError(f"{address} is already {what}.")


def _claim_kept_maildir(address: str, domain: Domain, *, reuse: bool) -> str:
    """'' if `domain` keeps no Maildir for `address`; else its path, marked reused, if `reuse`."""
    rows = list(KeptMaildir.objects.select_for_update()
                .filter(address=address, domain_ref=domain.pk, removed_at=None, reused_at=None)
                .order_by("-deleted_at"))
    if not rows:
        return ""
    if not reuse:
        raise ValidationError(KeptMaildir.refusal(address), code="maildir_kept")
    KeptMaildir.objects.filter(pk__in=[row.pk for row in rows]).update(reused_at=timezone.now())
    return rows[0].path


def _kept_addresses(addresses: set[str], domain: Domain) -> set[str]:
    """Those of `addresses` whose Maildir `domain` keeps (never an earlier domain's:
    create_domain settled those)."""
    kept: set[str] = set()
    for part in _in_chunks(sorted(addresses)):
        kept.update(KeptMaildir.objects.filter(
            address__in=part, domain_ref=domain.pk, removed_at=None, reused_at=None,
        ).values_list("address", flat=True))
    return kept


def _lock_for_import(domain: Domain, addresses: set[str]) -> Domain:
    """Lock the domain, then refuse the import if any of its addresses is taken."""
    locked = _lock_domain(domain)
    taken = _taken_addresses(addresses)
    if taken:
        raise ValidationError([f"{address} already exists." for address in sorted(taken)])
    return locked


def _taken_addresses(addresses: set[str]) -> set[str]:
    taken: set[str] = set()
    chunk = sorted(addresses)
    for start in range(0, len(chunk), 5000):
        part = chunk[start:start + 5000]
        taken.update(Mailbox.objects.filter(email__in=part).values_list("email", flat=True))
        taken.update(Alias.objects.filter(source__in=part).values_list("source", flat=True))
    return taken


def _check_mailbox_limits(
    domain: Domain, usage: DomainUsage, *, adding: int, quota: int, any_unlimited: bool = False
) -> None:
    if domain.max_mailboxes and usage.mailboxes + adding > domain.max_mailboxes:
        raise ValidationError(
            f"{domain.name} has reached its limit of {domain.max_mailboxes} mailboxes."
            if adding == 1 else
            f"{domain.name} allows {domain.max_mailboxes} mailboxes and has "
            f"{usage.mailboxes}; {adding} more do not fit."
        )
    _check_quota(domain, usage.quota_total, quota, any_unlimited=any_unlimited or quota == 0)


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


# The actor of a change an admin's delete causes in another domain's alias: that
# domain's admins see the change in their history, but not who in which other
# tenant caused it (superadmins find the delete itself at the same time).
ELSEWHERE_ACTOR = ELSEWHERE


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


def _password_value(password: str | None, password_hash: str | None, email: str) -> str:
    if (password is None) == (password_hash is None):
        raise ValidationError("Give either a password or a password hash.")
    if password is not None:
        return _policy_hash(password, email)
    assert password_hash is not None
    return passwords.normalize_hash(password_hash)


def _limits(max_mailboxes: Any, max_aliases: Any, max_quota: Any, default_quota: Any
            ) -> dict[str, int]:
    limits = {
        "max_mailboxes": _count(max_mailboxes, "The mailbox limit"),
        "max_aliases": _count(max_aliases, "The alias limit"),
        "max_quota": parse_size(max_quota),
        "default_quota": parse_size(default_quota),
    }
    if limits["max_quota"] and not limits["default_quota"]:
        raise ValidationError(
            "A domain with a total quota needs a default mailbox quota as well."
        )
    if limits["max_quota"] and limits["default_quota"] > limits["max_quota"]:
        raise ValidationError("The default mailbox quota is larger than the domain's total.")
    return limits


def _count(value: Any, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{what} must be a whole number.") from None
    if number < 0 or number > 2**31 - 1:
        raise ValidationError(f"{what} must be between 0 (no limit) and {2**31 - 1}.")
    return number


def _plural(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun}{'es' if noun.endswith(('x', 's')) else 's'}"


def _text(value: str, limit: int, what: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be text.")
    value = value.strip()
    if any(not c.isprintable() for c in value):
        raise ValidationError(f"{what} cannot contain control characters.")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValidationError(f"{what} must be valid UTF-8 text.") from None
    if len(value) > limit:
        raise ValidationError(f"{what} can have at most {limit} characters.")
    return value


def _switch(actor: Actor, kind: str, locked: Any, active: bool, domain: Domain) -> None:
    """Set `active` on a locked row and audit it as KIND.enable / KIND.disable."""
    if locked.active == active:
        return
    before = audit.snapshot(locked)
    locked.active = active
    locked.save(update_fields=["active", "modified"])
    _audit_change(actor, f"{kind}.enable" if active else f"{kind}.disable", locked, domain,
                  before)


def _audit_change(actor: Actor, action: str, obj: Any, domain: Domain,
                  before: dict[str, Any]) -> None:
    after = audit.snapshot(obj)
    changed = {k for k in after if before.get(k) != after[k]}
    if not changed:
        return
    audit.record(actor=actor, action=action, obj=obj, domain=domain,
                 before={k: before.get(k) for k in changed},
                 after={k: after[k] for k in changed})


def _insert_many(actor: Actor, action: str, domain: Domain, rows: Sequence[Any], key: str,
                 batch_size: int) -> None:
    """Bulk-insert new rows of `domain` and write one audit row for each."""
    model = type(rows[0]) if rows else Mailbox
    model._default_manager.bulk_create(rows, batch_size=batch_size)
    if not all(row.pk for row in rows):
        # A database that returns no ids from a bulk insert (MariaDB < 10.5).
        ids = dict(model._default_manager.filter(domain=domain).values_list(key, "pk"))
        for row in rows:
            row.pk = ids[getattr(row, key)]
    AuditEntry.objects.bulk_create(
        [audit.entry(actor=actor, action=action, obj=row, domain=domain,
                     after=audit.snapshot(row)) for row in rows],
        batch_size=batch_size,
    )


def _insert(obj: Any, duplicate_message: str) -> None:
    try:
        with transaction.atomic():
            obj.save(force_insert=True)
    except IntegrityError:
        raise ValidationError(duplicate_message) from None


# ---------------------------------------------------------------- CSV import and export
#
# Added for the CSV export/import pages (domains/csv_io.py). The *_problems
# functions are dry runs: the checks of the matching import, row by row,
# without a lock and without writing; the import re-checks under the lock.


@dataclass(frozen=True)
class AliasImport:
    source: str
    destinations: str | tuple[str, ...]
    active: bool = True


def mailbox_import_problems(
    *, domain: Domain, rows: Sequence[MailboxImport]
) -> list[list[str]]:
    """What import_mailboxes would refuse, for each row (same order); writes nothing.

    An empty `password_hash` is not checked: the caller hashes a plaintext
    password for that row later.
    """
    problems: list[list[str]] = [[] for _ in rows]
    seen: set[str] = set()
    candidates: list[tuple[int, str, int | None]] = []
    for index, row in enumerate(rows):
        errors = problems[index]
        address = _import_address(row.email, domain, seen, errors, mailbox=True)
        quota: int | None = domain.default_quota
        try:
            _text(row.name, NAME_MAX, "The name")
        except ValidationError as exc:
            errors.extend(exc.messages)
        if row.quota is not None:
            try:
                quota = parse_size(row.quota)
            except ValidationError as exc:
                errors.extend(exc.messages)
                quota = None
        if row.password_hash:
            try:
                passwords.normalize_hash(row.password_hash)
            except ValidationError as exc:
                errors.extend(exc.messages)
        if address is not None:
            candidates.append((index, address, quota))
    taken = _taken_addresses({address for _, address, _ in candidates})
    kept = _kept_addresses({address for _, address, _ in candidates}, domain)
    usage = domain_usage(domain)
    count, allocated = usage.mailboxes, usage.quota_total
    for index, address, quota in candidates:
        if address in taken:
            problems[index].append(f"{address} already exists.")
            continue
        if address in kept:
            problems[index].append(KeptMaildir.refusal(address))
            continue
        count += 1
        if domain.max_mailboxes and count > domain.max_mailboxes:
            problems[index].append(
                f"Over the limit: {domain.name} allows {domain.max_mailboxes} mailboxes and "
                f"has {usage.mailboxes}; this would be mailbox number {count}."
            )
            continue
        if domain.max_quota and quota is not None:
            if quota == 0:
                problems[index].append(
                    f"{domain.name} limits its total quota to {format_size(domain.max_quota)}, "
                    "so every mailbox needs a quota."
                )
                continue
            allocated += quota
            if allocated > domain.max_quota:
                problems[index].append(
                    f"Over the quota limit: {domain.name} allows "
                    f"{format_size(domain.max_quota)} in all; with this row the mailboxes "
                    f"would hold {format_size(allocated)}."
                )
    return problems


def import_mailboxes_with_state(
    *, actor: Actor, domain: Domain, rows: Sequence[MailboxImport], inactive: Iterable[str] = (),
    batch_size: int = 2000,
) -> list[Mailbox]:
    """import_mailboxes, then disable the `inactive` addresses among them: all or nothing."""
    switched_off = {normalize_address(address) for address in inactive}
    with transaction.atomic():
        created = import_mailboxes(actor=actor, domain=domain, rows=rows, batch_size=batch_size)
        off = [m for m in created if m.email in switched_off]
        now = timezone.now()
        for part in _in_chunks([m.pk for m in off]):
            Mailbox.objects.filter(pk__in=part).update(active=False, modified=now)
        for mailbox in off:
            mailbox.active = False
        AuditEntry.objects.bulk_create(
            [audit.entry(actor=actor, action="mailbox.disable", obj=m, domain=domain,
                         before={"active": True}, after={"active": False}) for m in off],
            batch_size=batch_size,
        )
    return created


def alias_import_problems(
    *, domain: Domain, rows: Sequence[AliasImport], checked_domains: Collection[str] | None,
) -> list[list[str]]:
    """What import_aliases would refuse, for each row (same order); writes nothing.

    `checked_domains`: the actor's reach, as for create_alias (see _is_checked).
    """
    problems: list[list[str]] = [[] for _ in rows]
    seen: set[str] = set()
    candidates: list[tuple[int, str, list[str]]] = []
    for index, row in enumerate(rows):
        errors = problems[index]
        address = _import_address(row.source, domain, seen, errors, allow_catchall=True)
        try:
            targets = _parse_destinations(row.destinations)
        except ValidationError as exc:
            errors.extend(exc.messages)
            continue
        if address is not None and address in targets:
            errors.append(f"{address} cannot deliver to itself.")
        elif address is not None:
            candidates.append((index, address, targets))
    taken = _taken_addresses({address for _, address, _ in candidates})
    unknown = _unknown_local_destinations({t for _, _, ts in candidates for t in ts},
                                          known=seen, source_domain=domain.name,
                                          checked_domains=checked_domains)
    usage = domain_usage(domain)
    count = usage.aliases
    for index, address, targets in candidates:
        if address in taken:
            problems[index].append(f"{address} already exists.")
            continue
        missing = [t for t in targets if t in unknown]
        if missing:
            problems[index].append(_unknown_message(missing))
        count += 1
        if domain.max_aliases and count > domain.max_aliases:
            problems[index].append(
                f"Over the limit: {domain.name} allows {domain.max_aliases} aliases and has "
                f"{usage.aliases}; this would be alias number {count}."
            )
    return problems


def import_aliases(
    *, actor: Actor, domain: Domain, rows: Sequence[AliasImport], batch_size: int = 2000,
    checked_domains: Collection[str] | None,
) -> list[Alias]:
    """Create many aliases: all of them or none, like import_mailboxes.

    `checked_domains`: the actor's reach, as for create_alias (see _is_checked).

    A local destination must be a mailbox, an alias, or a source in the same
    import. Validation runs over every row first and reports every bad row.
    """
    errors: list[str] = []
    aliases: list[Alias] = []
    seen: set[str] = set()
    all_targets: set[str] = set()
    for number, row in enumerate(rows, start=1):
        problems: list[str] = []
        address = _import_address(row.source, domain, seen, problems, allow_catchall=True)
        try:
            targets = _parse_destinations(row.destinations)
        except ValidationError as exc:
            problems.extend(exc.messages)
            targets = []
        if address is not None and address in targets:
            problems.append(f"{address} cannot deliver to itself.")
        if problems:
            errors.append(f"row {number}: {' '.join(problems)}")
            continue
        assert address is not None
        all_targets.update(targets)
        aliases.append(Alias(domain=domain, source=address, destinations=",".join(targets),
                             active=bool(row.active)))
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        locked = _lock_for_import(domain, seen)
        unknown = _unknown_local_destinations(all_targets, known=seen,
                                              source_domain=domain.name,
                                              checked_domains=checked_domains)
        if unknown:
            raise ValidationError(_unknown_message(sorted(unknown)))
        usage = domain_usage(locked)
        if locked.max_aliases and usage.aliases + len(aliases) > locked.max_aliases:
            raise ValidationError(
                f"{locked.name} allows {locked.max_aliases} aliases and has {usage.aliases}; "
                f"{len(aliases)} more do not fit."
            )
        for alias in aliases:
            alias.domain = locked
        _insert_many(actor, "alias.import", locked, aliases, "source", batch_size)
    return aliases


def record_export(*, actor: Actor, domain: Domain, what: str) -> None:
    """Audit a CSV export: a mailbox export carries the domain's password hashes."""
    with transaction.atomic():
        audit.record(actor=actor, action="domain.export", obj=domain, domain=domain,
                     after={"what": what})


def _import_address(raw: str, domain: Domain, seen: set[str], errors: list[str], *,
                    allow_catchall: bool = False, mailbox: bool = False) -> str | None:
    """The normalised address of an import row in `domain`, seen once; else None + why."""
    try:
        address = normalize_hosted_address(raw, mailbox=mailbox, allow_catchall=allow_catchall)
    except ValidationError as exc:
        errors.extend(exc.messages)
        return None
    if domain_of(address) != domain.name:
        errors.append(f"{address} is not in {domain.name}.")
        return None
    if address in seen:
        errors.append(f"{address} appears twice.")
        return None
    seen.add(address)
    return address


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


def _in_chunks(values: Sequence[Any], size: int = 5000) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]
