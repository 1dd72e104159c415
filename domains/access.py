"""Views' side of who may see what: everything outside a user's reach is a 404.

Three personas: superadmins (everything), domain admins (their domains'
mailboxes, aliases and alias domains) and mailbox users (their own
self-service pages). Views start with one of these helpers; what an account
reaches is decided, without a request, in `domains.reach`. Every app's views
ask here, since domains sits below them all.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase

from core.actor import MAILBOX_ACCOUNT_PREFIX
from core.http import View, is_mailbox_user
from domains.models import Alias, AliasDomain, Domain, Mailbox
from domains.reach import in_reach, is_admin, visible_domains


def admin_required(view: View) -> View:
    """Signed in as a superadmin or domain admin; anyone else gets a 404."""
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not is_admin(request.user):
            raise Http404
        return view(request, *args, **kwargs)
    return wrapped


def mailbox_required(view: View) -> View:
    """Signed in as a mailbox user whose mailbox and domain are still active."""
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if own_mailbox(request) is None:
            raise Http404
        return view(request, *args, **kwargs)
    return wrapped


def own_mailbox(request: HttpRequest) -> Mailbox | None:
    if not is_mailbox_user(request.user):
        return None
    mailbox_id = request.user.get_username().removeprefix(MAILBOX_ACCOUNT_PREFIX)
    if not mailbox_id.isdigit():
        return None
    return (Mailbox.objects.select_related("domain")
            .filter(pk=int(mailbox_id), active=True, domain__active=True).first())


# MariaDB's collation compares without case and skips some characters (a NUL
# among them), so `BOB@A.EXAMPLE%00` would find bob@a.example there and not on
# SQLite. Each helper below takes only the stored spelling: one answer on both.


def domain_or_404(request: HttpRequest, name: str) -> Domain:
    domain = visible_domains(request.user).filter(name=name).first()
    if domain is None or domain.name != name:
        raise Http404
    return domain


def mailbox_or_404(request: HttpRequest, email: str) -> Mailbox:
    mailbox = in_reach(request.user, Mailbox.objects.select_related("domain")
                       .filter(email=email)).first()
    if mailbox is None or mailbox.email != email:
        raise Http404
    return mailbox


def alias_or_404(request: HttpRequest, source: str) -> Alias:
    """The alias by its address (`@domain` for a catch-all), if the user may see it."""
    wanted = source.strip().lower()
    alias = in_reach(request.user, Alias.objects.select_related("domain")
                     .filter(source=wanted)).first()
    if alias is None or alias.source != wanted:
        raise Http404
    return alias


def alias_domain_or_404(request: HttpRequest, name: str) -> AliasDomain:
    alias_domain = in_reach(request.user, AliasDomain.objects.select_related("target")
                            .filter(name=name), "target").first()
    if alias_domain is None or alias_domain.name != name:
        raise Http404
    return alias_domain
