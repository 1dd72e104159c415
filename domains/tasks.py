"""Celery tasks of the domains app. Without a broker they run inline (settings)."""

from __future__ import annotations

from celery import shared_task

from domains import csv_io, services
from domains.models import ImportJob

# A 200,000-mailbox import takes a few minutes; the soft limit rolls the
# transaction back and marks the job failed, the hard one kills the worker
# (and, a grace later, core.jobs takes the job as stale).
IMPORT_TIME_LIMIT = ImportJob.time_limit
IMPORT_SOFT_TIME_LIMIT = IMPORT_TIME_LIMIT - 60


@shared_task(name="domains.run_import", soft_time_limit=IMPORT_SOFT_TIME_LIMIT,
             time_limit=IMPORT_TIME_LIMIT, acks_late=True, ignore_result=True)
def run_import(job_id: int) -> int:
    """Run ImportJob `job_id`; a job that is not queued is skipped (returns 0).

    Takes only the id: the rows (password hashes) stay in the database, never
    in the broker.
    """
    return csv_io.run_job(int(job_id))


@shared_task(name="domains.sweep_import_jobs", soft_time_limit=300, time_limit=330,
             ignore_result=True)
def sweep_import_jobs() -> int:
    """Beat's sweep of import jobs past their lifetime (services.sweep_import_jobs)."""
    return services.sweep_import_jobs()
