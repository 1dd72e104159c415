from __future__ import annotations

from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.db import models

from core.actor import MAILBOX_ACCOUNT_PREFIX
from domains.models import Domain


def admin_accounts() -> models.QuerySet[User]:
    """Every panel account (superadmins and domain admins), never a mailbox user's."""
    return User.objects.exclude(username__startswith=MAILBOX_ACCOUNT_PREFIX)


class SignIn(models.Model):
    """One panel session of an account: when and from where it began, when it was last seen.

    A row of its own beside Django's session, so a list of someone's sessions
    reads a few indexed rows instead of decoding every session. It goes with
    its session (sign-out, expiry, ended by hand): the foreign key cascades.
    The session key itself is never shown; pages name a sign-in by its id.
    """

    session = models.OneToOneField(Session, on_delete=models.CASCADE, related_name="sign_in")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sign_ins")
    started = models.DateTimeField()
    last_seen = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        db_table = "accounts_sign_in"

    def __str__(self) -> str:
        return f"sign-in of {self.user.get_username()} at {self.started:%Y-%m-%d %H:%M}"


class TwoFactorPolicy(models.Model):
    """Who must sign in with a second step (a code): one row, id 1.

    `all_admins`: every panel account (superadmins too). `domains`: the admins
    of these domains (an admin of one of them must, whatever else they
    administer). Mailbox users are never required; they may turn it on.
    Rows of the domain list go with their domain when it is deleted.
    """

    all_admins = models.BooleanField(default=False)
    domains = models.ManyToManyField(Domain, blank=True, related_name="+",
                                     db_table="accounts_two_factor_domain")

    class Meta:
        db_table = "accounts_two_factor_policy"

    def __str__(self) -> str:
        return "two-factor sign-in policy"

    @classmethod
    def current(cls) -> TwoFactorPolicy:
        policy, _ = cls.objects.get_or_create(pk=1)
        return policy
