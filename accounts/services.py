"""Writes to panel accounts: admins, their domain grants, mailbox sessions."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts import audit
from accounts.models import MAILBOX_ACCOUNT_PREFIX, DomainAdmin
from domains.models import Domain, Mailbox


def create_admin(
    *, actor: str, username: str, password: str, superadmin: bool = False,
    domains: Iterable[Domain] = (),
) -> User:
    """A superadmin, or a domain admin of `domains`."""
    username = username.strip().lower()
    if not username or len(username) > 150 or username.startswith(MAILBOX_ACCOUNT_PREFIX):
        raise ValidationError("A user name of 1 to 150 characters is required.")
    validate_password(password)
    domain_list = list(domains)
    if not superadmin and not domain_list:
        raise ValidationError("A domain admin needs at least one domain.")
    with transaction.atomic():
        if User.objects.filter(username=username).exists():
            raise ValidationError(f"The account {username} already exists.")
        if superadmin:
            user = User.objects.create_superuser(username=username, password=password)
        else:
            user = User.objects.create_user(username=username, password=password)
        DomainAdmin.objects.bulk_create(DomainAdmin(user=user, domain=d) for d in domain_list)
        audit.record(actor=actor, action="admin.create", obj=user,
                     after={"username": username, "superadmin": superadmin,
                            "domains": sorted(d.name for d in domain_list)})
    return user


def set_admin_domains(*, actor: str, user: User, domains: Iterable[Domain]) -> None:
    wanted = {d.pk: d for d in domains}
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


def create_superadmin(*, actor: str, username: str, password: str) -> User:
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
            audit.record(actor=mailbox.email, action="mailbox.first_sign_in", obj=mailbox,
                         domain=mailbox.domain)
    return user
