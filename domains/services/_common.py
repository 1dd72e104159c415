"""The small pieces every domains service shares: row locks, text checks, audit
of changes, bulk inserts, and ending a mailbox's panel sessions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction

from core import audit
from core.actor import MAILBOX_ACCOUNT_PREFIX, Actor
from domains.models import Alias, AliasDomain, Domain, Mailbox
from domains.validators import domain_of
from mailhost import auth_cache
from mailhost.models import MailHost

DESCRIPTION_MAX = 255
NAME_MAX = 255

_M = TypeVar("_M", bound=models.Model)


def maildir_path(email: str) -> str:
    """Home of a mailbox on the mail host; the rendered Dovecot config uses the same."""
    return MailHost.current().maildir_path(email)


# ---------------------------------------------------------------- locks


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


# ---------------------------------------------------------------- addresses


def _check_address_free(address: str) -> None:
    if Mailbox.objects.filter(email=address).exists():
        raise ValidationError(f"{address} is already a mailbox.")
    if Alias.objects.filter(source=address).exists():
        what = "the catch-all" if address.startswith("@") else "an alias"
        raise ValidationError(f"{address} is already {what}.")


# Up to this many addresses are looked up one list at a time; more are
# matched against every address of their domain, read in one indexed scan:
# 100,000 looked up cost an import 1.5 s of Python under the write lock.
ASK_EACH_MAX = 5000


def _taken_addresses(addresses: set[str], domain: Domain | None = None) -> set[str]:
    """Those of `addresses` that are a mailbox or an alias. `domain`: the domain
    of them all, which holds their rows if they exist (every write files an
    address under its own domain, and adopt refuses a row filed elsewhere)."""
    taken: set[str] = set()
    if domain is not None and len(addresses) > ASK_EACH_MAX:
        taken.update(Mailbox.objects.filter(domain=domain).values_list("email", flat=True))
        taken.update(Alias.objects.filter(domain=domain).values_list("source", flat=True))
        return taken & addresses
    for part in _in_chunks(sorted(addresses)):
        taken.update(Mailbox.objects.filter(email__in=part).values_list("email", flat=True))
        taken.update(Alias.objects.filter(source__in=part).values_list("source", flat=True))
    return taken


# ---------------------------------------------------------------- values


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


def _in_chunks(values: Sequence[Any], size: int = 5000) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


# ---------------------------------------------------------------- writes and their audit


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


def _insert(obj: Any, duplicate_message: str) -> None:
    try:
        with transaction.atomic():
            obj.save(force_insert=True)
    except IntegrityError:
        raise ValidationError(duplicate_message) from None


def _flush_auth_cache(addresses: Iterable[str]) -> None:
    """Have Dovecot forget these mailboxes' cached logins once the caller's
    transaction commits (on the mail host's agent; a failed flush is logged,
    never undoes the change). Without it an old password, or a disabled or
    deleted mailbox, keeps signing in from the cache until auth_cache_ttl."""
    auth_cache.flush_on_commit(addresses)


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
