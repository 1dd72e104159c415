from django.contrib.auth.models import User
from django.db import models

from core.actor import MAILBOX_ACCOUNT_PREFIX


class DomainAdmin(models.Model):
    """A panel account that manages the mailboxes, aliases and alias domains of a domain."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="domain_grants")
    domain = models.ForeignKey("domains.Domain", on_delete=models.CASCADE,
                               related_name="admin_grants")

    class Meta:
        db_table = "domain_admins"
        constraints = [models.UniqueConstraint(fields=["user", "domain"],
                                               name="domain_admin_once")]

    def __str__(self) -> str:
        return f"{self.user.username} -> {self.domain.name}"




def admin_accounts() -> models.QuerySet[User]:
    """Every panel account (superadmins and domain admins), never a mailbox user's."""
    return User.objects.exclude(username__startswith=MAILBOX_ACCOUNT_PREFIX)
