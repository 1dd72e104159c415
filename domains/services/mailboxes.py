"""Writes to mailboxes, one at a time: create, password, edit, enable and
disable, delete (the Maildir stays on disk and is recorded as kept)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core import audit
from core.actor import Actor
from core.errors import FieldErrors, on_field
from domains import passwords
from domains.models import KeptMaildir, Mailbox
from domains.selectors import domain_usage
from domains.services._common import (
    NAME_MAX,
    _audit_change,
    _check_address_free,
    _end_sessions,
    _flush_auth_cache,
    _insert,
    _lock,
    _lock_domain,
    _lock_domain_of,
    _switch,
    _text,
    maildir_path,
)
from domains.services.destinations import _remove_destinations
from domains.services.kept_maildirs import _claim_kept_maildir, _restorable
from domains.services.limits import _check_mailbox_count, _check_quota
from domains.services.password_policy import (
    _password_value,
    _policy_hash,
    password_policy_problems,
)
from domains.validators import normalize_hosted_address, parse_size


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
    problems = FieldErrors()  # every problem with the input at once
    address = email
    with problems.on("email"):
        address = normalize_hosted_address(email, mailbox=True)
    with problems.on("password"):
        hashed = _password_value(password, password_hash, address)
    with problems.on("name"):
        name = _text(name, NAME_MAX, "The name")
    with problems.on("quota"):
        wanted_quota = None if quota is None else parse_size(quota)
    problems.raise_any()
    with transaction.atomic():
        with on_field("email"):
            domain = _lock_domain_of(address)
            _check_address_free(address)
            reused = _claim_kept_maildir(address, domain, reuse=reuse_kept_maildir)
        usage = domain_usage(domain)
        mailbox_quota = domain.default_quota if wanted_quota is None else wanted_quota
        _check_mailbox_count(domain, usage.mailboxes, adding=1)
        with on_field("quota"):
            _check_quota(domain, usage.quota_total, mailbox_quota,
                         any_unlimited=mailbox_quota == 0)
        mailbox = Mailbox(domain=domain, email=address, password=hashed, name=name,
                          quota=mailbox_quota, active=active, password_changed=timezone.now())
        _insert(mailbox, f"{address} already exists.")
        audit.record(actor=actor, action="mailbox.create", obj=mailbox, domain=domain,
                     after={**audit.snapshot(mailbox),
                            **({"maildir_reused": reused} if reused else {})})
    return mailbox


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
        _flush_auth_cache([locked.email])
    return locked


def change_own_password(*, mailbox: Mailbox, current: str, new: str) -> Mailbox:
    """A mailbox user's own change: the current password, then the policy."""
    if not passwords.verify_password(current, mailbox.password):
        raise ValidationError({"current": "That is not your current password."})
    problems = password_policy_problems(new, mailbox.email, current=current)
    if problems:
        raise ValidationError({"new": problems})
    return set_mailbox_password(actor=Actor.mailbox(mailbox.email), mailbox=mailbox, password=new)


def update_mailbox(
    *, actor: Actor, mailbox: Mailbox, name: str | None = None, quota: int | str | None = None,
    active: bool | None = None, password: str | None = None,
) -> Mailbox:
    """Change any of name, quota, active and password: all of them or, on a refusal, none.

    A change Dovecot reads (password, active, quota) flushes its auth cache entry.
    """
    problems = FieldErrors()  # every problem with the input at once
    with problems.on("password"):
        hashed = None if password is None else _policy_hash(password, mailbox.email)
    with problems.on("name"):
        name = None if name is None else _text(name, NAME_MAX, "The name")
    with problems.on("quota"):
        new_quota = None if quota is None else parse_size(quota)
    problems.raise_any()
    with transaction.atomic():
        domain = _lock_domain(mailbox.domain)
        locked = _lock(Mailbox, mailbox.pk, str(mailbox))
        before = audit.snapshot(locked)
        was = (locked.active, locked.quota)
        if name is not None:
            locked.name = name
        if new_quota is not None:
            usage = domain_usage(domain)
            with on_field("quota"):
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
        if hashed is not None or (locked.active, locked.quota) != was:
            # Dovecot caches the userdb answer too: the quota rule comes from it.
            _flush_auth_cache([locked.email])
    return locked


def set_mailbox_active(*, actor: Actor, mailbox: Mailbox, active: bool) -> Mailbox:
    with transaction.atomic():
        locked = _lock(Mailbox, mailbox.pk, str(mailbox))
        was_active = locked.active
        _switch(actor, "mailbox", locked, active, mailbox.domain)
        if not active:
            _end_sessions([locked.pk])
        if locked.active != was_active:
            # Enabling flushes too: a refused login is cached as well (auth_cache_negative_ttl).
            _flush_auth_cache([locked.email])
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
        _flush_auth_cache([locked.email])
        locked.delete()
    return path


def restore_kept_maildir(*, actor: Actor, kept: KeptMaildir, password: str) -> Mailbox:
    """Make the deleted mailbox of `kept` again, with its mail: create_mailbox,
    reusing exactly this kept Maildir (its audit row records `maildir_reused`).

    Refused while the address is taken, its domain is gone or disabled, the
    row is no longer open, or the Maildir would not be the new mailbox's home.
    Lives here, not in kept_maildirs, because it is a mailbox write.
    """
    with transaction.atomic():
        locked, _domain = _restorable(kept)
        return create_mailbox(actor=actor, email=locked.address, password=password,
                              reuse_kept_maildir=True)
