"""A generated password, handed over once: on the page that answers the
write, and on the welcome sheet the admin opens next.

The page that shows the password leaves it, sealed (domains.sealed), in the
admin's own session for the welcome sheet of that mailbox; the first view of
the sheet takes it out. It is never in a URL, never readable in the session
table, and gone after that one view, after PASSWORD_SHEET_MINUTES, or as soon
as the mailbox's password changes again. Audit rows and logs never see it.
"""

from __future__ import annotations

import time

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from domains import sealed
from domains.models import Mailbox

SESSION_KEY = "welcome_sheet_passwords"
PASSWORD_SHEET_MINUTES = 15


def _version(mailbox: Mailbox) -> str:
    """Which password of the mailbox: a later change makes an offered one stale."""
    return mailbox.password_changed.isoformat() if mailbox.password_changed else ""


def show_generated(request: HttpRequest, mailbox: Mailbox, password: str, *,
                   changed: bool = False) -> HttpResponse:
    """The page showing a generated password once, which offers it to the welcome sheet."""
    waiting = {pk: entry for pk, entry in request.session.get(SESSION_KEY, {}).items()
               if entry.get("until", 0) > time.time()}
    waiting[str(mailbox.pk)] = {"sealed": sealed.seal(password), "version": _version(mailbox),
                                "until": time.time() + PASSWORD_SHEET_MINUTES * 60}
    request.session[SESSION_KEY] = waiting
    return render(request, "domains/mailbox_password_shown.html",
                  {"mailbox": mailbox, "password": password, "changed": changed,
                   "sheet_minutes": PASSWORD_SHEET_MINUTES})


def take_for_sheet(request: HttpRequest, mailbox: Mailbox) -> str:
    """The password offered for this mailbox's sheet, removed from the session; '' if none."""
    waiting = dict(request.session.get(SESSION_KEY, {}))
    entry = waiting.pop(str(mailbox.pk), None)
    if entry is None:
        return ""
    if waiting:
        request.session[SESSION_KEY] = waiting
    else:
        del request.session[SESSION_KEY]
    if entry.get("until", 0) <= time.time() or entry.get("version") != _version(mailbox):
        return ""
    try:
        return sealed.unseal(entry.get("sealed", ""))
    except sealed.Unreadable:
        return ""
