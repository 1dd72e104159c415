"""Sign-in hardening: the hooks django-axes calls, and the failure log for fail2ban.

The lockout rules themselves are settings (AXES_* in mailadmin.settings);
this module only answers the questions axes asks (who is the client, which
name counts, what does the lockout page say) and writes one line per failed
sign-in on the "mailadmin.auth" logger:

    mailadmin: authentication failure for "<username>" from <ip>

which deploy/fail2ban/filter.d/mailadmin.conf matches.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from datetime import timedelta
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from core.actor import MAILBOX_ACCOUNT_PREFIX
from domains.validators import normalize_address

auth_log = logging.getLogger("mailadmin.auth")

# A mail address is at most 254 characters; longer names are cut before logging.
MAX_LOGGED_NAME = 254
# What the log shows when the client address is not known (no <HOST> matches it).
UNKNOWN_ADDRESS = "-"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: IPAddress) -> bool:
    return any(address in ipaddress.ip_network(proxy, strict=False)
               for proxy in settings.MAILADMIN_TRUSTED_PROXIES)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or what a trusted proxy says it saw.

    X-Forwarded-For is read only when REMOTE_ADDR is one of
    MAILADMIN_TRUSTED_PROXIES, and then from the right: each trusted proxy
    appends the address it saw, so the right-most entry that is not itself a
    trusted proxy is the client. Entries left of it are whatever the client
    sent and are never believed.
    """
    remote = _address(request.META.get("REMOTE_ADDR") or "")
    if remote is None:
        return None
    client = remote
    if settings.MAILADMIN_TRUSTED_PROXIES:
        hops = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        for hop in reversed(hops):
            if not _trusted(client):
                break
            address = _address(hop)
            if address is None:  # garbage where a proxy's entry should be: stop here
                break
            client = address
    return str(client)


def lockout_username(request: HttpRequest, credentials: dict[str, Any] | None = None
                     ) -> str | None:
    """The name a failure counts against: the address as sign-in reads it.

    An address is normalised exactly as the mailbox sign-in does (IDNA/UTS-46,
    lower case, no trailing dot), so Bob@Example.org., bob@example\u3002org and
    bob@exam\u00adple.org share bob@example.org's counter instead of each
    getting a fresh one. Anything else (an admin name, an address sign-in
    would refuse) counts lower-cased. A typed "mailbox:..." (the prefix of
    mailbox session accounts) counts as the name behind it, so nobody gets a
    fresh counter by adding it.
    """
    source = credentials if credentials else getattr(request, "POST", {})
    name = source.get(settings.AXES_USERNAME_FORM_FIELD)
    if not isinstance(name, str):
        return None
    name = name.strip().lower().removeprefix(MAILBOX_ACCOUNT_PREFIX)
    if "@" in name:
        # An address sign-in refuses keeps its own (cut) spelling as the counter.
        with contextlib.suppress(ValidationError):
            name = normalize_address(name)
    return name[:MAX_LOGGED_NAME]


class LockoutHandler(AxesDatabaseHandler):
    """axes's database handler; a sign-in resets only its own name's failures.

    axes would delete every failure matching any lockout parameter, so one
    sign-in to an account the attacker owns would also wipe the failures
    their address just ran up against other people's accounts.
    """

    def reset_user_attempts(self, request: HttpRequest,
                            credentials: dict[str, Any] | None = None) -> int:
        names = {lockout_username(request, credentials)}
        if request.method == "POST":  # the name as typed on the sign-in form
            names.add(lockout_username(request))
        names.discard(None)
        count, _ = AccessAttempt.objects.filter(username__in=names).delete()
        return count


def lockout_response(request: HttpRequest, original_response: HttpResponse | None = None,
                     credentials: dict[str, Any] | None = None) -> HttpResponse:
    """The 429 page. It names no account, so it reads the same for names that do not exist."""
    cool_off = get_cool_off(request) or timedelta(0)
    minutes = max(1, round(cool_off.total_seconds() / 60))
    return render(request, "registration/locked.html", {"retry_minutes": minutes},
                  status=settings.AXES_HTTP_RESPONSE_CODE)


def escape_username(name: object) -> str:
    """The name as it may appear between the quotes of one log line.

    Backslash and double quote are backslash-escaped, and anything but
    printable ASCII (newlines, other line separators, control characters,
    look-alike letters) becomes a \\x, \\u or \\U escape, so no name can end
    the quoted field or the line, whatever encoding the log is read in.
    """
    text = name if isinstance(name, str) else ""
    out = []
    for char in text[:MAX_LOGGED_NAME]:
        if char in '\\"':
            out.append("\\" + char)
        elif char.isascii() and char.isprintable():
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def log_failed_sign_in(sender: object, credentials: dict[str, Any],
                       request: HttpRequest | None = None, **kwargs: Any) -> None:
    """user_login_failed receiver: one line per failure, never the password.

    The name is the one typed (escaped), not the counter's normalised one:
    fail2ban counts by address, and whoever reads the log sees the spelling
    tried (alice@a.example. and alice@a.example are one counter, two lines).
    """
    address = client_ip(request) if request is not None else None
    auth_log.warning('mailadmin: authentication failure for "%s" from %s',
                     escape_username(credentials.get("username")),
                     address or UNKNOWN_ADDRESS)
