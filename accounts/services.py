"""Writes to panel accounts: admins, their domain grants, mailbox sessions."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts import sessions
from accounts.models import SignIn, admin_accounts
from core import audit
from core.actor import MAILBOX_ACCOUNT_PREFIX, Actor
from core.env import generated_password
from core.errors import FieldErrors, on_field
from domains.models import Domain, DomainAdmin, Mailbox

# A generated admin password: 20 URL-safe characters, 120 random bits.
GENERATED_ADMIN_PASSWORD_LENGTH = 20


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
    """The admin's domains become exactly `domains`."""
    with transaction.atomic():
        locked = _admin_for_update(user)
        _grant(actor, locked, {d.pk: d for d in domains})


def change_admin_domains(*, actor: Actor, user: User, add: Iterable[Domain] = (),
                         remove: Iterable[Domain] = ()) -> None:
    """Grants `add` and withdraws `remove` (the picker's chips), against the grants as they
    stand when the row is locked, so two superadmins' edits do not undo each other."""
    with transaction.atomic():
        locked = _admin_for_update(user)
        current = {d.pk: d for d in Domain.objects.filter(admin_grants__user=locked)}
        gone = {d.pk for d in remove}
        wanted = {pk: d for pk, d in current.items() if pk not in gone}
        wanted.update({d.pk: d for d in add})
        _grant(actor, locked, wanted)


def _grant(actor: Actor, user: User, wanted: dict[int, Domain]) -> None:
    if not user.is_superuser and not wanted:
        raise ValidationError({"domains": "A domain admin needs at least one domain."})
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


def reset_admin_password(*, actor: Actor, user: User, keep_session: str | None = None) -> str:
    """A generated password, returned to be shown once; every session of the account ends
    but `keep_session` (a superadmin resetting their own keeps the one asking)."""
    with transaction.atomic():
        locked = _admin_for_update(user)
        password = generated_password(GENERATED_ADMIN_PASSWORD_LENGTH)
        validate_password(password, locked)
        locked.set_password(password)
        locked.save(update_fields=["password"])
        sessions.end_sessions(locked, keep=keep_session)
        audit.record(actor=actor, action="admin.password", obj=locked,
                     after={"generated": True})
    user.password = locked.password
    return password


def change_own_admin_password(*, actor: Actor, user: User, current: str, new: str,
                              keep_session: str | None) -> int:
    """An admin's own new password. The current one must be right; every other session
    of the account ends (`keep_session`, the one asking, stays); how many ended.

    The view keeps its session signed in (accounts.sessions.keep_signed_in).
    """
    problems = FieldErrors()
    with problems.on("current"):
        if not user.check_password(current):
            raise ValidationError("That is not your current password.")
    with problems.on("new"):
        if new == current:
            raise ValidationError("The new password is the one you have now.")
        validate_password(new, user)
    problems.raise_any()
    with transaction.atomic():
        locked = _admin_for_update(user)
        locked.set_password(new)
        locked.save(update_fields=["password"])
        ended = sessions.end_sessions(locked, keep=keep_session)
        audit.record(actor=actor, action="admin.own_password", obj=locked,
                     after={"other_sessions_ended": ended})
    user.password = locked.password
    return ended


def end_session(*, actor: Actor, user: User, sign_in_id: int) -> None:
    """Ends one session of `user` (theirs only: another account's id is 'not found')."""
    with transaction.atomic():
        row = (SignIn.objects.select_for_update().select_related("session")
               .filter(pk=sign_in_id, user=user).first())
        if row is None:
            raise ValidationError("That session has ended already.")
        audit.record(actor=actor, action="session.end", obj=user, after={
            "started": row.started.isoformat(), "ip": row.ip,
            "browser": sessions.browser(row.user_agent)})
        row.session.delete()


def end_other_sessions(*, actor: Actor, user: User, keep_session: str | None) -> int:
    """Ends every session of `user` but the one asking; how many ended."""
    with transaction.atomic():
        ended = sessions.end_sessions(user, keep=keep_session)
        audit.record(actor=actor, action="session.end_others", obj=user,
                     after={"ended": ended})
    return ended


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
            sessions.end_sessions(locked)
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
        sessions.end_sessions(locked)
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
