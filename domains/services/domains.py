"""Writes to domains: create (settling an earlier namesake's kept Maildirs),
limits and description, enable and disable, delete (forced: with everything in it)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import ForeignObjectRel
from django.utils import timezone

from core import audit, bulk
from core.actor import Actor
from core.errors import FieldErrors, on_field
from domains.address_changes import addresses_changed
from domains.checklist import ROLE_ADDRESSES
from domains.models import Alias, AliasDomain, Domain, KeptMaildir, Mailbox
from domains.selectors import domain_usage
from domains.services._common import (
    DESCRIPTION_MAX,
    _audit_change,
    _end_sessions,
    _flush_auth_cache,
    _in_chunks,
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

    What it takes with it is read, and its audit and kept-Maildir rows made,
    before the transaction (on SQLite every other panel write waits while one
    is open: core.bulk). Under the domain's lock it is read again; if anything
    changed meanwhile the rows are made again from what is there now.
    """
    contents = _contents(domain)
    _refuse_unforced(domain, contents, force)
    plan = _plan_deletion(actor, domain, contents)
    with transaction.atomic():
        locked = _lock_domain(domain)
        current = _contents(locked)
        if current != plan.contents:
            plan = _plan_deletion(actor, locked, current)
        _refuse_unforced(locked, current, force)
        # The deletion is one event on the audit log, its mailboxes, aliases
        # and alias domains folded under it (a domain may hold 200,000).
        event = audit.record(actor=actor, action="domain.delete", obj=locked, domain=locked,
                             before=audit.snapshot(locked),
                             after={"forced": force, "maildirs_kept": len(current.mailboxes)})
        for rows in plan.audit_rows:
            rows.write(parent=event)
        bulk.insert_rows(KeptMaildir, KEPT_COLUMNS, plan.ledger)
        _remove_destinations(actor, plan.emails | plan.sources, contains=f"@{locked.name}",
                             home=locked, exclude_domain=locked)
        AliasDomain.objects.filter(target=locked).delete()
        Alias.objects.filter(domain=locked).delete()
        # Mailboxes of other domains its aliases listed (its own go below).
        addresses_changed(mailboxes={a for a in plan.listed
                                     if not a.endswith(f"@{locked.name}")})
        _end_sessions(plan.mailbox_ids)
        _flush_auth_cache(plan.emails)
        _delete_mailboxes(locked, plan.mailbox_ids)
        for hook in _deletion_hooks:
            hook(actor=actor, domain=locked)
        locked.delete()
    return plan.kept


# The columns of a kept-Maildir row a deletion writes (core.bulk.insert_rows).
KEPT_COLUMNS = ("address", "domain_ref", "path", "deleted_at", "removed_at", "reused_at",
                "purge_requested_at", "removal_error")


@dataclass(frozen=True)
class _Contents:
    """What a domain's deletion takes with it, as snapshot() columns (plain
    values, no model instances), and where its Maildirs live."""

    mailboxes: list[tuple[Any, ...]]
    aliases: list[tuple[Any, ...]]
    alias_domains: list[tuple[Any, ...]]
    vmail_dir: str


def _contents(domain: Domain) -> _Contents:
    return _Contents(
        mailboxes=list(Mailbox.objects.filter(domain=domain)
                       .values_list(*audit.snapshot_columns(Mailbox))),
        aliases=list(Alias.objects.filter(domain=domain)
                     .values_list(*audit.snapshot_columns(Alias))),
        alias_domains=list(AliasDomain.objects.filter(target=domain)
                           .values_list(*audit.snapshot_columns(AliasDomain))),
        vmail_dir=MailHost.current().vmail_dir,
    )


def _refuse_unforced(domain: Domain, contents: _Contents, force: bool) -> None:
    if contents.mailboxes and not force:
        raise ValidationError(
            f"{domain.name} still has {_plural(len(contents.mailboxes), 'mailbox')}; delete "
            "them first or force the deletion (their mail stays on disk)."
        )


@dataclass(frozen=True)
class _Deletion:
    """A deletion's rows, made from its _Contents before its transaction."""

    contents: _Contents
    audit_rows: list[audit.EntryRows]  # under the domain.delete event
    ledger: list[tuple[Any, ...]]  # KEPT_COLUMNS
    kept: list[str]  # the Maildirs left on disk
    mailbox_ids: list[int]
    emails: set[str]
    sources: set[str]  # the aliases', but the catch-all
    listed: set[str]  # what the aliases delivered to


def _plan_deletion(actor: Actor, domain: Domain, contents: _Contents) -> _Deletion:
    host = MailHost(vmail_dir=contents.vmail_dir)  # only for its path rule
    deleted_at = bulk.db_value(KeptMaildir, "deleted_at", timezone.now())
    mailbox_rows = audit.EntryRows(actor=actor, action="mailbox.delete", model=Mailbox,
                                   domain=domain)
    alias_rows = audit.EntryRows(actor=actor, action="alias.delete", model=Alias, domain=domain)
    alias_domain_rows = audit.EntryRows(actor=actor, action="aliasdomain.delete",
                                        model=AliasDomain, domain=domain)
    ledger: list[tuple[Any, ...]] = []
    kept: list[str] = []
    ids: list[int] = []
    emails: set[str] = set()
    columns = audit.snapshot_columns(Mailbox)
    for values in contents.mailboxes:
        before = audit.snapshot_of(columns, values)
        email, path = before["email"], host.maildir_path(before["email"])
        kept.append(path)
        ids.append(before["id"])
        emails.add(email)
        ledger.append((email, domain.pk, path, deleted_at, None, None, None, ""))
        mailbox_rows.add(object_id=before["id"], object_repr=email, before=before,
                         after={"maildir_kept": path})
    sources: set[str] = set()
    listed: set[str] = set()
    columns = audit.snapshot_columns(Alias)
    for values in contents.aliases:
        before = audit.snapshot_of(columns, values)
        alias = Alias(source=before["source"], destinations=before["destinations"])
        listed.update(alias.destination_list)
        if not alias.is_catchall:
            sources.add(alias.source)
        alias_rows.add(object_id=before["id"], object_repr=alias.source, before=before)
    columns = audit.snapshot_columns(AliasDomain)
    for values in contents.alias_domains:
        before = audit.snapshot_of(columns, values)
        alias_domain_rows.add(object_id=before["id"], object_repr=before["name"], before=before)
    return _Deletion(contents=contents, audit_rows=[mailbox_rows, alias_rows, alias_domain_rows],
                     ledger=ledger, kept=kept, mailbox_ids=ids, emails=emails,
                     sources=sources, listed=listed)


def _delete_mailboxes(domain: Domain, ids: list[int]) -> None:
    """Delete the mailboxes of `domain` (`ids`, all of them, under its lock) and
    what apps above this one keep on each (app passwords, vacation rules):
    Django's delete would first make a model instance of every mailbox."""
    # Every relation Django's cascade follows (deletion.get_candidate_relations_to_delete),
    # those hidden from related_objects too: a Sieve script's related_name is "+".
    relations = [f for f in Mailbox._meta.get_fields(include_hidden=True)
                 if isinstance(f, ForeignObjectRel) and f.auto_created and not f.concrete
                 and (f.one_to_one or f.one_to_many)]
    if any(r.on_delete not in (models.CASCADE, models.SET_NULL, models.DO_NOTHING)
           for r in relations):
        for part in _in_chunks(ids):  # a rule of its own (PROTECT ...): Django applies it
            Mailbox.objects.filter(pk__in=part).delete()
        return
    for relation in relations:
        # One statement each, the mailboxes as a subquery (no list of ids to send).
        query = relation.related_model._base_manager.filter(**{
            f"{relation.field.name}__in": Mailbox.objects.filter(domain=domain).values("pk")})
        if relation.on_delete is models.CASCADE:
            query.delete()
        elif relation.on_delete is models.SET_NULL:
            query.update(**{relation.field.name: None})
    bulk.delete_rows(Mailbox, ids)


def record_export(*, actor: Actor, domain: Domain, what: str) -> None:
    """Audit a CSV export: a mailbox export carries the domain's password hashes."""
    with transaction.atomic():
        audit.record(actor=actor, action="domain.export", obj=domain, domain=domain,
                     after={"what": what})
