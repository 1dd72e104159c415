"""The reset button of a mailbox user's two-factor sign-in, for the mailbox page.

A template tag rather than a context value: the mailbox page (domains) shows it
without domains importing accounts, which sits above it.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from accounts import twofactor
from domains.models import Mailbox

register = template.Library()


@register.inclusion_tag("accounts/_two_factor_reset_tag.html", takes_context=True)
def mailbox_two_factor_reset(context: template.Context, mailbox: Mailbox) -> dict[str, Any]:
    """Shown only when the mailbox's account has an authenticator or recovery codes."""
    user = twofactor.mailbox_user(mailbox)
    return {
        "csrf_token": context.get("csrf_token"),
        "shown": user is not None and twofactor.has_device(user),
        "reset_url": reverse("accounts:mailbox-two-factor-reset", args=[mailbox.email]),
        "reset_name": mailbox.email,
    }
