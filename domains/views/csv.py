"""CSV export and import pages of a domain, for superadmins and the domain's admins."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_safe

from core import jobs
from core.http import actor, is_htmx
from domains import csv_export, csv_io, passwords, selectors, services
from domains.access import admin_required, domain_or_404
from domains.models import Domain, ImportJob
from domains.reach import checked_domains

# A confirmed job that has not started after this long gets a hint about the worker.
WAITING_HINT = datetime.timedelta(seconds=30)


class ImportForm(forms.Form):
    kind = forms.ChoiceField(choices=ImportJob.Kind.choices, initial=ImportJob.Kind.MAILBOXES,
                             widget=forms.RadioSelect, label="The file holds")
    file = forms.FileField(label="CSV file", allow_empty_file=False,
                           help_text="UTF-8 (with or without BOM), comma-separated, header "
                                     "row first, at most 12 MB")


# ---------------------------------------------------------------- export


# admin_required is typed for HttpResponse; a StreamingHttpResponse passes through unchanged.
@admin_required
@require_safe
def export_mailboxes(request: HttpRequest, name: str) -> StreamingHttpResponse:
    return _export(request, name, "mailboxes", csv_export.mailbox_csv)


@admin_required
@require_safe
def export_aliases(request: HttpRequest, name: str) -> StreamingHttpResponse:
    return _export(request, name, "aliases", csv_export.alias_csv)


def _export(request: HttpRequest, name: str, what: str,
            pieces: Callable[[Domain], Iterator[str]]) -> StreamingHttpResponse:
    domain = domain_or_404(request, name)
    services.record_export(actor=actor(request), domain=domain, what=what)
    response = StreamingHttpResponse(pieces(domain), content_type="text/csv; charset=utf-8")
    # The domain name is lowercase ASCII (punycode): safe in a header as it is.
    response["Content-Disposition"] = f'attachment; filename="{domain.name}-{what}.csv"'
    response["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------- import


@csrf_exempt
@admin_required
@require_http_methods(["GET", "POST"])
def import_upload(request: HttpRequest, name: str) -> HttpResponse:
    # The size limit must be in place before anything reads the body, so the
    # CSRF check runs below (csrf_protect), after the handler is installed.
    limiter = csv_io.LimitedUploadHandler()
    request.upload_handlers.insert(0, limiter)
    return _import_upload(request, name, limiter)


@csrf_protect
def _import_upload(request: HttpRequest, name: str,
                   limiter: csv_io.LimitedUploadHandler) -> HttpResponse:
    domain = domain_or_404(request, name)
    # The embedded default has no beat; a preview (create_job) sweeps too.
    if request.method != "POST":
        services.sweep_import_jobs()
    context: dict[str, object] = {
        "domain": domain, "default_scheme": passwords.default_scheme(),
        "schemes": list(passwords.SCHEMES), "plaintext_max": csv_io.PLAINTEXT_MAX,
        "generated_hours": int(services.GENERATED_KEPT.total_seconds() // 3600),
    }
    if request.method != "POST":
        context["form"] = ImportForm()
        return render(request, "domains/csv_import.html", context)
    form = ImportForm(request.POST, request.FILES)
    valid = form.is_valid()
    if limiter.refused:
        form.errors.pop("file", None)  # "required": the file was dropped on the way in
        form.add_error("file", csv_io.too_large_message())
        valid = False
    context["form"] = form
    if not valid:
        return render(request, "domains/csv_import.html", context, status=400)
    preview = csv_io.parse_upload(domain=domain, kind=form.cleaned_data["kind"],
                                  upload=form.cleaned_data["file"],
                                  checked_domains=checked_domains(request.user))
    context["preview"] = preview
    if preview.ok:
        context["job"] = csv_io.create_job(domain=domain, actor=actor(request),
                                           preview=preview)
    status = 400 if preview.file_errors else 200
    return render(request, "domains/csv_import.html", context, status=status)


@admin_required
def import_confirm(request: HttpRequest, name: str, job: int) -> HttpResponse:
    domain = domain_or_404(request, name)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    found = _job_or_404(domain, job)
    try:
        confirmed = services.confirm_import_job(job=found)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("domains:import", name=domain.name)  # its GET sweeps the expired job
    except jobs.QueueDown as down:
        # The job is a preview again: its page offers the same confirmation.
        messages.error(request, str(down))
        return redirect("domains:import-job", name=domain.name, job=found.pk)
    if not confirmed:
        messages.info(request, "This import was confirmed already.")
    return redirect("domains:import-job", name=domain.name, job=found.pk)


@admin_required
@require_safe
def import_job(request: HttpRequest, name: str, job: int) -> HttpResponse:
    domain = domain_or_404(request, name)
    found = _job_or_404(domain, job)
    now = timezone.now()
    stale = found.is_stale(now)
    context = {
        "domain": domain, "job": found, "stale": stale,
        # Offered to the uploader only; the others learn nothing of them.
        "passwords_offered": found.state == ImportJob.State.DONE
        and selectors.generated_passwords_waiting(found, str(actor(request))),
        "polling": found.confirmed is not None and not found.finished_state and not stale,
        "waiting_long": found.confirmed is not None and now - found.confirmed > WAITING_HINT,
    }
    template = "domains/_csv_job_status.html" if is_htmx(request) else "domains/csv_job.html"
    return render(request, template, context)


@admin_required
def import_passwords(request: HttpRequest, name: str, job: int) -> HttpResponse:
    """The generated passwords of a finished import, once, for its uploader (else 404).

    POST only: the download destroys them, so a prefetch or a crawler must not.
    """
    domain = domain_or_404(request, name)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    text = services.take_generated_passwords(actor=actor(request), job=_job_or_404(domain, job))
    if text is None:
        raise Http404
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{domain.name}-import-{job}-passwords.csv"')
    response["Cache-Control"] = "no-store"
    return response


def _job_or_404(domain: Domain, pk: int) -> ImportJob:
    # Never load `rows` (up to tens of MB) or `generated` here: the job page is
    # polled twice a second.
    job = ImportJob.objects.defer("rows", "generated").filter(pk=pk, domain=domain).first()
    if job is None:
        raise Http404
    return job
