"""{% quota_used mailbox %}: used / limit with a meter (templates/domains/_quota_used.html)."""

from __future__ import annotations

from typing import Any

from django import template

from domains import quota
from domains.models import Mailbox

register = template.Library()


@register.inclusion_tag("domains/_quota_used.html")
def quota_used(mailbox: Mailbox) -> dict[str, Any]:
    used = quota.used_of(mailbox)
    return {
        "used": used,
        # The meter turns amber at 80 % and red at 95 %, the levels Dovecot warns at.
        "low": used.limit * 80 // 100,
        "high": used.limit * 95 // 100,
    }
