"""The Mail host page: superadmins see and edit this host's row."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from core import jobs
from core.http import actor, show_errors, superadmin_required
from mailhost import apply, services
from mailhost.forms import MailHostForm, SetupForm
from mailhost.models import ConfigApply, MailHost


@superadmin_required
@require_http_methods(["GET", "POST"])
def mail_host(request: HttpRequest) -> HttpResponse:
    host = MailHost.current()
    form = MailHostForm.of(host, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.update_mail_host(actor=actor(request), **form.cleaned_data)
        except ValidationError as error:
            show_errors(form, error)
        else:
            messages.success(request, "Saved the mail host. Run render_config to apply it to "
                                      "Postfix and Dovecot.")
            _warn_if_queue_moved(request, host.queue, saved)
            return redirect("mailhost:mail-host")
    return render(request, "mailhost/mail_host.html",
                  {"form": form, "host": host, "applies": apply.history(host)},
                  status=400 if form.errors else 200)


@superadmin_required
@require_http_methods(["GET", "POST"])
def setup(request: HttpRequest) -> HttpResponse:
    """Step 1 of the first day: the host's public names and addresses, then the dashboard
    (whose next step is the first domain)."""
    host = MailHost.current()
    form = SetupForm.of(host, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.update_mail_host(actor=actor(request), **form.cleaned_data)
        except ValidationError as error:
            show_errors(form, error)
        else:
            messages.success(request, f"Saved the mail host {form.cleaned_data['mail_hostname']}.")
            _warn_if_queue_moved(request, host.queue, saved)
            return redirect("home")
    return render(request, "mailhost/setup.html", {"form": form, "host": host},
                  status=400 if form.errors else 200)


def _warn_if_queue_moved(request: HttpRequest, before: str, host: MailHost) -> None:
    """Host work goes to host.<mail hostname>, and the agent consumes the queue it was
    started with: a new name leaves applies and DKIM keys waiting until it follows."""
    if host.queue != before and not settings.CELERY_TASK_ALWAYS_EAGER:
        messages.warning(request, (
            f"Host operations (applying the configuration, DKIM keys, Maildir removal) now "
            f"queue on {host.queue}, no longer {before}: set MAILADMIN_AGENT_QUEUE="
            f"{host.queue} in the agent's environment (/etc/mailadmin/agent.env) and restart "
            "it (mailadmin-agent), or they wait."))


@superadmin_required
@require_http_methods(["POST"])
def config_check(request: HttpRequest) -> HttpResponse:
    """Ask the host's agent to check the configuration; the result joins the history."""
    try:
        checked = apply.request_apply(actor=actor(request), check_only=True)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    except jobs.QueueDown as down:
        messages.error(request, str(down))
    else:
        checked.refresh_from_db()
        if checked.in_progress:
            messages.info(request, "The check is queued on the host's agent; reload for "
                                   "its result.")
        else:
            messages.success(request, f"Checked the configuration: "
                                      f"{checked.get_outcome_display().lower()}.")
    return redirect("mailhost:mail-host")


@superadmin_required
@require_http_methods(["POST"])
def config_apply(request: HttpRequest) -> HttpResponse:
    """Ask the host's agent to apply the configuration: install, reload, probe, roll back."""
    try:
        applied = apply.request_apply(actor=actor(request), check_only=False)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("mailhost:mail-host")
    except jobs.QueueDown as down:
        messages.error(request, str(down))
        return redirect("mailhost:mail-host")
    applied.refresh_from_db()
    if applied.in_progress:
        messages.info(request, "The apply is queued on the host's agent; reload for its result.")
    elif applied.state == ConfigApply.State.DONE:
        messages.success(request, f"Applied the configuration: "
                                  f"{applied.get_outcome_display().lower()}.")
    else:
        messages.error(request, f"The apply failed ({applied.get_outcome_display().lower()}): "
                                f"{applied.error}")
    return redirect("mailhost:mail-host")
