"""Who may see what. Everything outside a user's reach is a 404.

Three personas: superadmins (everything), domain admins (their domains'
mailboxes, aliases and alias domains) and mailbox users (their own
self-service pages). Views start with one of these helpers. The reach is
decided from the grants (`DomainAdmin`) kept beside the domains they open,
so every app's views can ask here without an upward import.
"""

from __future__ import annotations

from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase

from core.actor import MAILBOX_ACCOUNT_PREFIX
from core.http import View, is_mailbox_user
from domains.models import Alias, AliasDomain, Domain, DomainAdmin, Mailbox

_M = TypeVar("_M", bound=Model)


def is_admin(user: User | AnonymousUser) -> bool:
    if not user.is_authenticated or is_mailbox_user(user):
        return False
    return bool(user.is_superuser or DomainAdmin.objects.filter(user_id=user.pk).exists())


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


def visible_domains(user: User | AnonymousUser) -> QuerySet[Domain]:
    if not is_admin(user):
        return Domain.objects.none()
    if user.is_superuser:
        return Domain.objects.all()
    return Domain.objects.filter(admin_grants__user_id=int(user.pk or 0))


def checked_domains(user: User | AnonymousUser | None) -> frozenset[str] | None:
    """The domain names a service may look into for this user; None for every domain.

    Services take it as `checked_domains`: what lies outside is answered as
    if it were not on this server, so a domain admin learns nothing about it.
    """
    if user is not None and is_admin(user) and user.is_superuser:
        return None
    if user is None:
        return frozenset()
    return frozenset(visible_domains(user).values_list("name", flat=True))


def checked_domains_of(username: str) -> frozenset[str] | None:
    """checked_domains of the account named `username` (a background job's actor)."""
    return checked_domains(User.objects.filter(username=username).first())


def in_reach(user: User | AnonymousUser, rows: QuerySet[_M], domain_field: str = "domain"
             ) -> QuerySet[_M]:
    """`rows` limited to the user's domains.

    Superadmins get the queryset untouched: a `domain_id IN (SELECT ...)`
    over every domain makes MariaDB materialise 200,000 rows before it can
    sort and cut a page. A domain admin's few domain ids go in as a list.
    """
    if is_admin(user) and user.is_superuser:
        return rows
    ids = list(visible_domains(user).values_list("pk", flat=True))
    return rows.filter(**{f"{domain_field}_id__in": ids})


def domain_or_404(request: HttpRequest, name: str) -> Domain:
    domain = visible_domains(request.user).filter(name=name).first()
    if domain is None:
        raise Http404
    return domain


def mailbox_or_404(request: HttpRequest, email: str) -> Mailbox:
    mailbox = in_reach(request.user, Mailbox.objects.select_related("domain")
                       .filter(email=email)).first()
    if mailbox is None:
        raise Http404
    return mailbox


def alias_or_404(request: HttpRequest, source: str) -> Alias:
    """The alias by its address (`@domain` for a catch-all), if the user may see it."""
    alias = in_reach(request.user, Alias.objects.select_related("domain")
                     .filter(source=source.strip().lower())).first()
    if alias is None:
        raise Http404
    return alias


def alias_domain_or_404(request: HttpRequest, name: str) -> AliasDomain:
    alias_domain = in_reach(request.user, AliasDomain.objects.select_related("target")
                            .filter(name=name), "target").first()
    if alias_domain is None:
        raise Http404
    return alias_domain
