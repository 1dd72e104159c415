"""What every view needs: the actor of a request, form errors, htmx and paging."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render

from core.actor import MAILBOX_ACCOUNT_PREFIX, Actor

View = Callable[..., HttpResponseBase]

PAGE_SIZE = 50


def actor(request: HttpRequest) -> Actor:
    """The signed-in panel account as the actor of the writes this request makes."""
    return Actor.account(request.user.get_username())


def show_errors(form: Form, error: ValidationError,
                fields: dict[str, str] | None = None) -> None:
    """A service's refusal on the field it names, or at the top of the form.

    `fields` maps a service's keyword argument to the form field that holds it
    when their names differ (email -> local_part). Errors the form found
    itself stay; each message is added once.
    """
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for name, problems in error.message_dict.items():
        field = (fields or {}).get(name, name)
        target = field if field in form.fields else None
        shown = list(form.errors.get(target or "__all__", []))
        new = [p for p in problems if p not in shown]
        if new:
            form.add_error(target, new)


def is_htmx(request: HttpRequest) -> bool:
    """An htmx request wants only the part of the page it swaps in."""
    return bool(getattr(request, "htmx", False))


def confirm_delete(request: HttpRequest, template: str, context: dict[str, object],
                   delete: Callable[[], str], done_url: str) -> HttpResponse:
    """A confirmation page on GET; on POST the delete, or its refusal shown (400).

    `delete` calls the service and returns the message to show when it is done.
    """
    error = ""
    if request.method == "POST":
        try:
            done = delete()
        except ValidationError as refusal:
            error = " ".join(refusal.messages)
        else:
            messages.success(request, done)
            return redirect(done_url)
    return render(request, template, {**context, "error": error}, status=400 if error else 200)


def page_of(request: HttpRequest) -> int:
    try:
        return max(1, min(int(request.GET.get("page", "1")), 100_000))
    except ValueError:
        return 1


def is_mailbox_user(user: User | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.username.startswith(MAILBOX_ACCOUNT_PREFIX))


def superadmin_required(view: View) -> View:
    """Signed in as a superadmin; anyone else gets a 404."""
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if is_mailbox_user(request.user) or not request.user.is_superuser:
            raise Http404
        return view(request, *args, **kwargs)
    return wrapped
