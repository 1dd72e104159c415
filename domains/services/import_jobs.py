"""The CSV import's jobs (core.jobs): confirmed and enqueued, swept when
their password hashes have been kept long enough, and their generated
passwords handed out once. csv_io previews, stores and runs them."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core import audit, jobs
from core.actor import Actor
from domains import sealed
from domains.models import ImportJob

EXPIRED_PREVIEW = "This preview has expired; upload the file again."
NEVER_FINISHED = ("The import was confirmed but no worker finished it in time; "
                  "nothing was imported. Upload the file again.")
RUN_TASK = "domains.run_import"
GENERATED_KEPT = ImportJob.GENERATED_KEPT


def confirm_import_job(*, job: ImportJob) -> bool:
    """Mark a waiting job confirmed and enqueue its task once the transaction commits.

    False when it was confirmed before (a second click enqueues nothing).
    A ValidationError when the preview is past its lifetime: the sweep would
    delete it, and its rows were checked against the tables as they were then.
    """
    with transaction.atomic():
        if ImportJob.objects.filter(pk=job.pk, confirmed__isnull=True,
                                    created__lt=_import_cutoff()).exists():
            raise ValidationError(EXPIRED_PREVIEW)
        claimed = ImportJob.objects.filter(
            pk=job.pk, state=ImportJob.State.QUEUED, confirmed__isnull=True,
        ).update(confirmed=timezone.now())
        if claimed:
            jobs.enqueue_on_commit(RUN_TASK, job.pk, refused=lambda: _unconfirm(job.pk))
    return bool(claimed)


def _unconfirm(job_id: int) -> str:
    # Back to a preview waiting for its confirmation: the same click works once the
    # queue answers, and the sweep drops it at its lifetime as it would any preview.
    ImportJob.objects.filter(pk=job_id, state=ImportJob.State.QUEUED).update(confirmed=None)
    return "the import was not started and nothing was written; confirm it again in a minute"


def sweep_import_jobs() -> int:
    """Drop the password hashes of jobs that will not run.

    Never confirmed, past MAILADMIN_IMPORT_PENDING_HOURS from the preview:
    the job is deleted. Confirmed but never started, past it from the
    confirm (a worker never came): it fails with its rows emptied, and a
    late worker's claim finds it not queued. Running and stale (core.jobs:
    past the task's hard time limit, so its worker died): it fails the same
    way, and a worker still running would roll its import back.
    Beat runs this every quarter hour; the embedded default, with no beat, at
    start (manage.py sweep_imports) and on the import pages.
    The number of jobs swept.
    """
    cutoff = _import_cutoff()
    deleted, _ = ImportJob.objects.filter(state=ImportJob.State.QUEUED, confirmed__isnull=True,
                                          created__lt=cutoff).delete()
    failed = ImportJob.objects.filter(state=ImportJob.State.QUEUED, confirmed__lt=cutoff).update(
        state=ImportJob.State.FAILED, rows=[], finished=timezone.now(), error=NEVER_FINISHED)
    failed += jobs.sweep_stale(ImportJob, NEVER_FINISHED, rows=[])
    expired = ImportJob.objects.exclude(generated="").filter(
        finished__lt=timezone.now() - GENERATED_KEPT).update(generated="")
    return deleted + failed + expired


def take_generated_passwords(*, actor: Actor, job: ImportJob) -> str | None:
    """The CSV (email,password) of the passwords generated for `job`, once.

    Only for the admin who uploaded it, within GENERATED_KEPT of its end;
    taking them destroys them. None when they are not (or no longer) there
    for `actor`. The audit row says they were downloaded, never what.
    """
    if (job.actor != str(actor) or not job.generated or job.finished is None
            or job.finished < timezone.now() - GENERATED_KEPT):
        return None
    with transaction.atomic():
        # Conditional: of two simultaneous downloads only one gets the file.
        if not ImportJob.objects.filter(pk=job.pk, generated=job.generated).update(generated=""):
            return None
        audit.record(actor=actor, action="domain.import_passwords_download", obj=job.domain,
                     domain=job.domain, after={"job": job.pk})
    try:
        return sealed.unseal(job.generated)
    except sealed.Unreadable:
        return None


def _import_cutoff() -> datetime.datetime:
    return timezone.now() - datetime.timedelta(hours=settings.MAILADMIN_IMPORT_PENDING_HOURS)
