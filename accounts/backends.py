"""Mailbox users sign in with their mail address and mail password."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.models import User
from django.http import HttpRequest

from accounts.services import mailbox_account
from domains.services import verify_mailbox_login


class MailboxBackend(BaseBackend):
    """Checks the password against users.password, exactly as Dovecot does.

    Runs after Django's ModelBackend, so an admin account with the same name
    signs in with its own password, never with the mailbox's.
    """

    def authenticate(self, request: HttpRequest | None, username: str | None = None,
                     password: str | None = None, **kwargs: Any) -> User | None:
        if not username or not password or "@" not in username:
            return None
        mailbox = verify_mailbox_login(email=username, password=password)
        if mailbox is None:
            return None
        return mailbox_account(mailbox)

    def get_user(self, user_id: int) -> User | None:
        return User.objects.filter(pk=user_id, is_active=True).first()
