"""Who may see what. Everything outside a user's reach is a 404.

Three personas: superadmins (everything), domain admins (their domains'
mailboxes, aliases and alias domains) and mailbox users (their own
self-service pages). Views start with one of these helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse

from accounts.models import MAILBOX_ACCOUNT_PREFIX, DomainAdmin
from domains.models import Alias, AliasDomain, Domain, Mailbox

View = Callable[..., HttpResponse]


def is_mailbox_user(user: User | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.username.startswith(MAILBOX_ACCOUNT_PREFIX))


def is_admin(user: User | AnonymousUser) -> bool:
    if not user.is_authenticated or is_mailbox_user(user):
        return False
    return bool(user.is_superuser or DomainAdmin.objects.filter(user_id=user.pk).exists())


def admin_required(view: View) -> View:
    """Signed in as a superadmin or domain admin; anyone else gets a 404."""
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_admin(request.user):
            raise Http404
        return view(request, *args, **kwargs)
    return wrapped


def superadmin_required(view: View) -> View:
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if is_mailbox_user(request.user) or not request.user.is_superuser:
            raise Http404
        return view(request, *args, **kwargs)
    return wrapped


def mailbox_required(view: View) -> View:
    """Signed in as a mailbox user whose mailbox and domain are still active."""
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if own_mailbox(request) is None:
            raise Http404
        return view(request, *args, **kwargs)
    return wrapped


def own_mailbox(request: HttpRequest) -> Mailbox | None:
    if not is_mailbox_user(request.user):
        return None
    email = request.user.get_username().removeprefix(MAILBOX_ACCOUNT_PREFIX)
    return (Mailbox.objects.select_related("domain")
            .filter(email=email, active=True, domain__active=True).first())


def visible_domains(user: User | AnonymousUser) -> QuerySet[Domain]:
    if not is_admin(user):
        return Domain.objects.none()
    if user.is_superuser:
        return Domain.objects.all()
    return Domain.objects.filter(admin_grants__user_id=int(user.pk or 0))


def domain_or_404(request: HttpRequest, name: str) -> Domain:
    domain = visible_domains(request.user).filter(name=name).first()
    if domain is None:
        raise Http404
    return domain


def mailbox_or_404(request: HttpRequest, email: str) -> Mailbox:
    mailbox = (Mailbox.objects.select_related("domain")
               .filter(email=email, domain__in=visible_domains(request.user)).first())
    if mailbox is None:
        raise Http404
    return mailbox


def alias_or_404(request: HttpRequest, pk: int) -> Alias:
    alias = (Alias.objects.select_related("domain")
             .filter(pk=pk, domain__in=visible_domains(request.user)).first())
    if alias is None:
        raise Http404
    return alias


def alias_domain_or_404(request: HttpRequest, name: str) -> AliasDomain:
    alias_domain = (AliasDomain.objects.select_related("target")
                    .filter(name=name, target__in=visible_domains(request.user)).first())
    if alias_domain is None:
        raise Http404
    return alias_domain
