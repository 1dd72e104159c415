"""Writes to domains: create (settling an earlier namesake's kept Maildirs),
limits and description, enable and disable, delete (forced: with everything in it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core import audit
from core.actor import Actor
from core.errors import FieldErrors, on_field
from core.models import AuditEntry
from domains.address_changes import addresses_changed
from domains.checklist import ROLE_ADDRESSES
from domains.models import Alias, AliasDomain, Domain, KeptMaildir
from domains.selectors import domain_usage
from domains.services._common import (
    DESCRIPTION_MAX,
    _audit_change,
    _end_sessions,
    _flush_auth_cache,
    _insert,
    _lock_domain,
    _plural,
    _switch,
    _text,
)
from domains.services.destinations import (
    _check_destinations,
    _parse_destinations,
    _remove_destinations,
)
from domains.services.kept_maildirs import KEPT_MAILDIR_CHOICES, _settle_earlier_kept_maildirs
from domains.services.limits import _check_alias_count, _check_new_total, _limits
from domains.validators import normalize_domain
from mailhost.models import MailHost


class DeletionHook(Protocol):
    def __call__(self, *, actor: Actor, domain: Domain) -> None: ...


# What apps above this one do with their rows of a domain being deleted (dkim
# keeps its keys as history and has their files removed): each registers its
# hook when Django starts (its AppConfig.ready) instead of being imported
# here, and it runs inside the deletion's transaction, before the domain row goes.
_deletion_hooks: list[DeletionHook] = []


def on_domain_deletion(hook: DeletionHook) -> None:
    """Run `hook(actor=..., domain=...)` in every domain deletion (once however often called)."""
    if hook not in _deletion_hooks:
        _deletion_hooks.append(hook)


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
    role_aliases_to: str | Iterable[str] = "",
) -> Domain:
    """Create a domain. `kept_maildirs`: what becomes of the Maildirs still kept
    from an earlier domain of this name, which must be settled here (refused
    while there are some and it is ''): "reserve" makes them this domain's
    (their addresses stay refused until a superadmin reuses or forgets each),
    "remove" records them as removed from the mail host.

    `role_aliases_to`: when given, postmaster@ and abuse@ of the new domain
    are made aliases delivering there, in the same transaction (a destination
    in this server's domains must exist, as for any alias).
    """
    problems = FieldErrors()  # every problem with the input at once
    domain_name = name
    with problems.on("name"):
        domain_name = normalize_domain(name)
    with problems.on("max_quota"):  # _limits names the field of each of its refusals
        limits = _limits(max_mailboxes, max_aliases, max_quota, default_quota)
    with problems.on("description"):
        description = _text(description, DESCRIPTION_MAX, "The description")
    role_targets: list[str] = []
    if role_aliases_to and (not isinstance(role_aliases_to, str) or role_aliases_to.strip()):
        with problems.on("role_aliases_to"):
            role_targets = _parse_destinations(role_aliases_to)
    with problems.on("kept_maildirs"):
        if kept_maildirs not in {"", *KEPT_MAILDIR_CHOICES}:
            raise ValidationError("Earlier kept Maildirs: choose reserve or remove.")
    problems.raise_any()
    with transaction.atomic():
        with on_field("name"):
            if AliasDomain.objects.filter(name=domain_name).exists():
                raise ValidationError(f"{domain_name} is already an alias domain.")
            if Domain.objects.filter(name=domain_name).exists():
                raise ValidationError(f"The domain {domain_name} already exists.")
        earlier = list(KeptMaildir.objects.select_for_update().filter(
            address__endswith=f"@{domain_name}", removed_at=None, reused_at=None))
        if earlier and not kept_maildirs:
            raise ValidationError({"kept_maildirs": ValidationError(
                f"An earlier {domain_name} left {_plural(len(earlier), 'kept Maildir')} on "
                "disk: choose to reserve their addresses (refused until a superadmin reuses "
                "or forgets each) or to record them as removed from the mail host.",
                code="earlier_kept_maildirs")})
        domain = Domain(name=domain_name, description=description, active=active, **limits)
        _insert(domain, f"The domain {domain_name} already exists.")
        audit.record(actor=actor, action="domain.create", obj=domain, domain=domain,
                     after=audit.snapshot(domain))
        if earlier:
            _settle_earlier_kept_maildirs(actor, domain, earlier, kept_maildirs)
        if role_targets:
            _add_role_aliases(actor, domain, role_targets)
    return domain


def _add_role_aliases(actor: Actor, domain: Domain, targets: list[str]) -> None:
    """postmaster@ and abuse@ of a domain created a moment ago, in its transaction
    (no address of it can be taken yet)."""
    sources = [f"{local}@{domain.name}" for local in ROLE_ADDRESSES]
    # A refusal here is about what the admin typed under "deliver to".
    with on_field("role_aliases_to"):
        _check_alias_count(domain, 0, adding=len(sources))
        for source in sources:
            _check_destinations(source, targets, None)
    for source in sources:
        alias = Alias(domain=domain, source=source, destinations=",".join(targets))
        _insert(alias, f"{source} already exists.")
        audit.record(actor=actor, action="alias.create", obj=alias, domain=domain,
                     after=audit.snapshot(alias))


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
            with on_field("description"):
                locked.description = _text(description, DESCRIPTION_MAX, "The description")
        limits = _limits(
            locked.max_mailboxes if max_mailboxes is None else max_mailboxes,
            locked.max_aliases if max_aliases is None else max_aliases,
            locked.max_quota if max_quota is None else max_quota,
            locked.default_quota if default_quota is None else default_quota,
        )
        _check_new_total(locked, domain_usage(locked), limits)
        for key, value in limits.items():
            setattr(locked, key, value)
        locked.save()
        _audit_change(actor, "domain.update", locked, locked, before)
    return locked


def set_domain_active(*, actor: Actor, domain: Domain, active: bool) -> Domain:
    """Disabling stops delivery and login for the whole domain; the rows stay."""
    with transaction.atomic():
        locked = _lock_domain(domain)
        was_active = locked.active
        _switch(actor, "domain", locked, active, locked)
        if not active:
            _end_sessions(locked.mailboxes.values_list("pk", flat=True))
        if locked.active != was_active:
            _flush_auth_cache(locked.mailboxes.values_list("email", flat=True))
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
        # The deletion is one event on the audit log, its mailboxes, aliases
        # and alias domains folded under it (a domain may hold 200,000).
        event = audit.record(actor=actor, action="domain.delete", obj=locked, domain=locked,
                             before=audit.snapshot(locked),
                             after={"forced": force, "maildirs_kept": mailbox_count})
        now = timezone.now()
        ledger: list[KeptMaildir] = []
        host = MailHost.current()  # once, not a query a mailbox
        for mailbox in locked.mailboxes.all():
            path = host.maildir_path(mailbox.email)
            kept.append(path)
            ledger.append(KeptMaildir(address=mailbox.email, domain_ref=locked.pk, path=path,
                                      deleted_at=now))
            rows.append(audit.entry(actor=actor, action="mailbox.delete", obj=mailbox,
                                    domain=locked, before=audit.snapshot(mailbox),
                                    after={"maildir_kept": path}, parent=event))
        listed: set[str] = set()  # what the domain's aliases delivered to
        for alias in locked.aliases.all():
            listed.update(alias.destination_list)
            rows.append(audit.entry(actor=actor, action="alias.delete", obj=alias,
                                    domain=locked, before=audit.snapshot(alias), parent=event))
        for alias_domain in locked.alias_domains.all():
            rows.append(audit.entry(actor=actor, action="aliasdomain.delete", obj=alias_domain,
                                    domain=locked, before=audit.snapshot(alias_domain),
                                    parent=event))
        AuditEntry.objects.bulk_create(rows, batch_size=2000)
        KeptMaildir.objects.bulk_create(ledger, batch_size=2000)
        gone = set(locked.mailboxes.values_list("email", flat=True))
        gone |= {a.source for a in locked.aliases.all() if not a.is_catchall}
        _remove_destinations(actor, gone, contains=f"@{locked.name}", home=locked,
                             exclude_domain=locked)
        locked.alias_domains.all().delete()
        locked.aliases.all().delete()
        # Mailboxes of other domains its aliases listed (its own go below).
        addresses_changed(mailboxes={a for a in listed if not a.endswith(f"@{locked.name}")})
        _end_sessions(locked.mailboxes.values_list("pk", flat=True))
        _flush_auth_cache(locked.mailboxes.values_list("email", flat=True))
        locked.mailboxes.all().delete()
        for hook in _deletion_hooks:
            hook(actor=actor, domain=locked)
        locked.delete()
    return kept


def record_export(*, actor: Actor, domain: Domain, what: str) -> None:
    """Audit a CSV export: a mailbox export carries the domain's password hashes."""
    with transaction.atomic():
        audit.record(actor=actor, action="domain.export", obj=domain, domain=domain,
                     after={"what": what})
