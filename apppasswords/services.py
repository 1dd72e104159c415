"""Every write to app passwords and to a domain's "app passwords only" rule.

Keyword-only, with an Actor; one transaction and one audit row each, which
never holds a token or its hash. A revocation, and a domain's rule switched
on, flush Dovecot's auth cache for the mailboxes concerned once the
transaction commits, so the very next login is checked against the table.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apppasswords import usage
from apppasswords.models import ALPHABET, SECRET_LENGTH, SELECTOR_LENGTH, AppPassword
from core import audit
from core.actor import Actor
from domains import passwords
from domains.models import Domain, Mailbox
from mailhost import app_password_lookup, app_usage, auth_cache, privileged

NAME_MAX = 100
# Live app passwords per mailbox: a list that always fits one page, and a
# bound on the passdb rows one mailbox can make Dovecot consider.
LIVE_MAX = 20
PROTOCOLS = ("imap", "smtp", "sieve")


@dataclass(frozen=True)
class Created:
    app_password: AppPassword
    token: str  # shown once, never stored


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _clean_name(name: str) -> str:
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise ValidationError({"name": "Name it after the program or device, e.g. \"Phone\"."})
    # isprintable() refuses control and format characters too (a right-to-left
    # override would make a listed name read as another).
    if len(cleaned) > NAME_MAX or not cleaned.isprintable():
        raise ValidationError({"name": f"At most {NAME_MAX} printable characters."})
    return cleaned


def create_app_password(*, actor: Actor, mailbox: Mailbox, name: str,
                        protocols: list[str] | tuple[str, ...]) -> Created:
    """A new app password for `mailbox`, allowed for `protocols` (imap, smtp, sieve)."""
    cleaned = _clean_name(name)
    wanted = set(protocols)
    if not wanted or not wanted <= set(PROTOCOLS):
        raise ValidationError({"protocols": "Pick at least one of IMAP, SMTP and Sieve."})
    for _ in range(5):
        selector = _random(SELECTOR_LENGTH)
        token = selector + _random(SECRET_LENGTH)
        hashed = passwords.hash_password(token)  # before the transaction: it is slow
        try:
            with transaction.atomic():
                locked = _lock_mailbox(mailbox)
                live = locked.app_passwords.filter(revoked__isnull=True).count()
                if live >= LIVE_MAX:
                    raise ValidationError(
                        f"{locked.email} already has {LIVE_MAX} app passwords; revoke one first.")
                if locked.app_passwords.filter(revoked__isnull=True, name=cleaned).exists():
                    raise ValidationError({"name": "A live app password already has this name."})
                row = AppPassword.objects.create(
                    mailbox=locked, name=cleaned, selector=selector, password=hashed,
                    lookup=app_password_lookup.lookup_value(token),
                    **{p: p in wanted for p in PROTOCOLS})
                audit.record(actor=actor, action="mailbox.app_password_create", obj=locked,
                             domain=locked.domain,
                             after={"app_password": cleaned, "protocols": sorted(wanted)})
            return Created(row, token)
        except IntegrityError:
            continue  # the selector was taken (one in 10^12): draw another token
    raise ValidationError("Could not create an app password; try again.")


def revoke_app_password(*, actor: Actor, app_password: AppPassword) -> AppPassword:
    """Revoked at once: the row stays (listed as revoked) and no longer signs in."""
    with transaction.atomic():
        mailbox = _lock_mailbox(app_password.mailbox)
        try:
            locked = AppPassword.objects.select_for_update().get(pk=app_password.pk)
        except AppPassword.DoesNotExist:
            raise ValidationError("This app password no longer exists.") from None
        if locked.revoked is None:
            locked.revoked = timezone.now()
            locked.save(update_fields=["revoked"])
            audit.record(actor=actor, action="mailbox.app_password_revoke", obj=mailbox,
                         domain=mailbox.domain, before={"app_password": locked.name})
            auth_cache.flush_on_commit([mailbox.email])
    return locked


def set_app_passwords_required(*, actor: Actor, domain: Domain, required: bool) -> Domain:
    """Whether the domain's mail programs must use app passwords (the main
    password then signs in to the panel only)."""
    with transaction.atomic():
        try:
            locked = Domain.objects.select_for_update().get(pk=domain.pk)
        except Domain.DoesNotExist:
            raise ValidationError(f"The domain {domain.name} no longer exists.") from None
        if locked.require_app_passwords != required:
            before = locked.require_app_passwords
            locked.require_app_passwords = required
            locked.save(update_fields=["require_app_passwords", "modified"])
            audit.record(actor=actor, action="domain.app_passwords_required", obj=locked,
                         domain=locked, before={"require_app_passwords": before},
                         after={"require_app_passwords": required})
            # Either way: cached main-password logins would go on until the TTL,
            # and the plain SQL passdb's cached "no such user" (the negative
            # TTL) would refuse the main password after it is allowed again.
            auth_cache.flush_on_commit(locked.mailboxes.values_list("email", flat=True))
    return locked


# App passwords updated per transaction when usage is applied.
USAGE_BATCH = 500


@dataclass(frozen=True)
class UsageSync:
    lines: int = 0
    skipped: int = 0
    updated: int = 0
    # Why nothing was read, when nothing could be.
    not_run: str = ""


def apply_app_password_usage(*, parsed: usage.Parsed) -> int:
    """Record each app password's newest use; returns the rows changed.

    A row changes only when the use is newer than the one it holds, in one
    conditional UPDATE, so applying the same lines twice, or an older line
    after a newer one, or two syncs at once, changes nothing. Ids of rows
    deleted since are ignored. USAGE_BATCH rows per transaction.
    """
    changed = 0
    items = sorted(parsed.newest.items())
    for start in range(0, len(items), USAGE_BATCH):
        with transaction.atomic():
            for pk, use in items[start:start + USAGE_BATCH]:
                changed += AppPassword.objects.filter(
                    Q(last_used__isnull=True) | Q(last_used__lt=use.when), pk=pk,
                ).update(last_used=use.when, last_ip=use.ip, last_service=use.service)
    return changed


def sync_app_password_usage(*, actor: Actor) -> UsageSync:
    """Take the mail host's usage lines through the root helper, apply them, then
    let the helper forget them (mailhost/app_usage.py). Raises
    privileged.HelperError when the helper fails; nothing is lost then.

    No audit row: it mirrors what Dovecot saw, and no person changed anything
    (the records hold an id, an address, a service and a time, no secret).
    `actor` names who ran it, for the log of a caller.
    """
    del actor  # the sync records nothing of its own (above)
    if not settings.MAILADMIN_DOVECOT_LOGIN_CACHE:
        return UsageSync(not_run="MAILADMIN_DOVECOT_LOGIN_CACHE is none: no login check "
                                 "records app-password usage")
    if not privileged.has_helper():
        return UsageSync(not_run="this host has no root helper (MAILADMIN_HELPER_COMMAND is "
                                 "none): only it can read Dovecot's usage file")
    taken = app_usage.take()
    parsed = usage.parse(taken.lines)
    updated = apply_app_password_usage(parsed=parsed)
    app_usage.done(taken)
    return UsageSync(lines=parsed.lines, skipped=parsed.skipped, updated=updated)


def _lock_mailbox(mailbox: Mailbox) -> Mailbox:
    """The mailbox's row, locked; its domain read, not locked. With select_related,
    FOR UPDATE would lock the domain's row too, after the mailbox's: the reverse of the
    alias writers' order (the domain, then the mailboxes the vacation refresh locks),
    a deadlock on MariaDB."""
    try:
        locked = Mailbox.objects.select_for_update().get(pk=mailbox.pk)
    except Mailbox.DoesNotExist:
        raise ValidationError(f"{mailbox.email} no longer exists.") from None
    locked.domain = Domain.objects.get(pk=locked.domain_id)
    return locked
