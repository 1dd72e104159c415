"""The Mail host page: superadmins see and edit this host's row."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from core.actor import MAILBOX_ACCOUNT_PREFIX
from core.http import actor, show_errors
from mailhost import services
from mailhost.forms import MailHostForm
from mailhost.models import MailHost

View = Callable[..., HttpResponse]


def _superadmin_required(view: View) -> View:
    """As accounts.permissions.superadmin_required, which this app sits below."""
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if user.get_username().startswith(MAILBOX_ACCOUNT_PREFIX) or not user.is_superuser:
            raise Http404
        return view(request, *args, **kwargs)
    return wrapped


@_superadmin_required
@require_http_methods(["GET", "POST"])
def mail_host(request: HttpRequest) -> HttpResponse:
    host = MailHost.current()
    form = MailHostForm.of(host, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_mail_host(actor=actor(request), **form.cleaned_data)
        except ValidationError as error:
            show_errors(form, error)
        else:
            messages.success(request, "Saved the mail host. Run render_config to apply it to "
                                      "Postfix and Dovecot.")
            return redirect("mailhost:mail-host")
    return render(request, "mailhost/mail_host.html", {"form": form, "host": host},
                  status=400 if form.errors else 200)
