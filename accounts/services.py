"""Writes to panel accounts: admins, their domain grants, mailbox sessions."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import admin_accounts
from core import audit
from core.actor import MAILBOX_ACCOUNT_PREFIX, Actor
from core.errors import FieldErrors, on_field
from domains.models import Domain, DomainAdmin, Mailbox


def create_admin(
    *, actor: Actor, username: str, password: str, superadmin: bool = False,
    domains: Iterable[Domain] = (),
) -> User:
    """A superadmin, or a domain admin of `domains`."""
    problems = FieldErrors()  # every problem with the input at once
    username = username.strip().lower()
    with problems.on("username"):
        if not username or len(username) > 150 or username.startswith(MAILBOX_ACCOUNT_PREFIX):
            raise ValidationError("A user name of 1 to 150 characters is required.")
    with problems.on("password"):
        validate_password(password)
    domain_list = list(domains)
    with problems.on("domains"):
        if not superadmin and not domain_list:
            raise ValidationError("A domain admin needs at least one domain.")
    problems.raise_any()
    with transaction.atomic():
        if User.objects.filter(username=username).exists():
            raise ValidationError({"username": f"The account {username} already exists."})
        if superadmin:
            user = User.objects.create_superuser(username=username, password=password)
        else:
            user = User.objects.create_user(username=username, password=password)
        DomainAdmin.objects.bulk_create(DomainAdmin(user=user, domain=d) for d in domain_list)
        audit.record(actor=actor, action="admin.create", obj=user,
                     after={"username": username, "superadmin": superadmin,
                            "domains": sorted(d.name for d in domain_list)})
    return user


def set_admin_domains(*, actor: Actor, user: User, domains: Iterable[Domain]) -> None:
    wanted = {d.pk: d for d in domains}
    if not user.is_superuser and not wanted:
        raise ValidationError({"domains": "A domain admin needs at least one domain."})
    with transaction.atomic():
        current = set(DomainAdmin.objects.filter(user=user).values_list("domain_id", flat=True))
        if current == set(wanted):
            return
        DomainAdmin.objects.filter(user=user).exclude(domain_id__in=wanted).delete()
        DomainAdmin.objects.bulk_create(
            DomainAdmin(user=user, domain=d) for pk, d in wanted.items() if pk not in current)
        names = sorted(Domain.objects.filter(pk__in=current).values_list("name", flat=True))
        audit.record(actor=actor, action="admin.domains", obj=user,
                     before={"domains": names},
                     after={"domains": sorted(d.name for d in wanted.values())})


def set_admin_password(*, actor: Actor, user: User, password: str) -> None:
    """A new password; every session of the account opened before ends.

    Django keeps a session only while it carries a hash of the account's
    `password` field, so the new hash ends them; a view that changes the
    signed-in admin's own password keeps its session with
    update_session_auth_hash.
    """
    with on_field("password"):
        validate_password(password, user)
    with transaction.atomic():
        locked = _admin_for_update(user)
        locked.set_password(password)
        locked.save(update_fields=["password"])
        audit.record(actor=actor, action="admin.password", obj=locked)
    user.password = locked.password


def set_admin_active(*, actor: Actor, user: User, active: bool) -> None:
    """Enable or disable an admin; a disable ends every session of the account for good."""
    if not active:
        _refuse_self(actor, user, "disable")
    with transaction.atomic():
        locked = _admin_for_update(user)
        if locked.is_active == active:
            return
        if not active:
            _keep_a_superadmin(locked, "disable")
        locked.is_active = active
        locked.save(update_fields=["is_active"])
        if not active:
            # Django only ignores an inactive account's sessions: enabled again,
            # the sessions opened before would come back. They end here.
            _end_admin_sessions(locked)
        audit.record(actor=actor, action="admin.enable" if active else "admin.disable",
                     obj=locked, before={"active": not active}, after={"active": active})
    user.is_active = active


def delete_admin(*, actor: Actor, user: User) -> None:
    """Remove an admin account and its domain grants; its sessions end."""
    _refuse_self(actor, user, "delete")
    with transaction.atomic():
        locked = _admin_for_update(user)
        _keep_a_superadmin(locked, "delete")
        domains = sorted(DomainAdmin.objects.filter(user=locked)
                         .values_list("domain__name", flat=True))
        audit.record(actor=actor, action="admin.delete", obj=locked,
                     before={"username": locked.username, "superadmin": locked.is_superuser,
                             "active": locked.is_active, "domains": domains})
        _end_admin_sessions(locked)
        locked.delete()


def _admin_for_update(user: User) -> User:
    locked = admin_accounts().select_for_update().filter(pk=user.pk).first()
    if locked is None:
        raise ValidationError(f"{user.username} is not an admin.")
    return locked


def _refuse_self(actor: Actor, user: User, verb: str) -> None:
    # The panel's actor is the signed-in user name; locking oneself out
    # from the panel is always a slip, and the command line can undo it.
    if actor == Actor.account(user.username):
        raise ValidationError(f"You cannot {verb} your own account.")


def _keep_a_superadmin(locked: User, verb: str) -> None:
    if not (locked.is_superuser and locked.is_active):
        return
    others = (User.objects.select_for_update()
              .filter(is_superuser=True, is_active=True).exclude(pk=locked.pk))
    if not others.exists():
        raise ValidationError(
            f"{locked.username} is the last active superadmin; add another before you {verb} it.")


def _end_admin_sessions(user: User) -> None:
    """Delete the stored sessions of this account (database sessions, the default).

    Only live sessions are read; their number is bounded by
    MAILADMIN_SESSION_SECONDS of sign-ins.
    """
    stale = [s.pk for s in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
             if str(s.get_decoded().get("_auth_user_id")) == str(user.pk)]
    Session.objects.filter(pk__in=stale).delete()


def create_superadmin(*, actor: Actor, username: str, password: str) -> User:
    return create_admin(actor=actor, username=username, password=password, superadmin=True)


def has_superadmin() -> bool:
    return User.objects.filter(is_superuser=True, is_active=True).exists()


def mailbox_account(mailbox: Mailbox) -> User:
    """The session account of a mailbox user, made on the first sign-in.

    It has no usable password: the mailbox's own hash (the one Dovecot
    checks) is what signs it in, through accounts.backends.MailboxBackend.
    """
    # The mailbox id, not the address: addresses run to 254 characters and
    # auth_user.username to 150, and a re-created address is a new mailbox
    # that must not inherit an old session.
    username = f"{MAILBOX_ACCOUNT_PREFIX}{mailbox.pk}"
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username,
                                                   defaults={"email": mailbox.email})
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            audit.record(actor=Actor.mailbox(mailbox.email), action="mailbox.first_sign_in",
                         obj=mailbox, domain=mailbox.domain)
    return user
