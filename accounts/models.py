from django.contrib.auth.models import User
from django.db import models

from core.actor import MAILBOX_ACCOUNT_PREFIX


def admin_accounts() -> models.QuerySet[User]:
    """Every panel account (superadmins and domain admins), never a mailbox user's."""
    return User.objects.exclude(username__startswith=MAILBOX_ACCOUNT_PREFIX)
