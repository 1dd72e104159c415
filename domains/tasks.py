"""Celery tasks of the domains app. Without a broker they run inline (settings)."""

from __future__ import annotations

import os

from celery import shared_task
from django.conf import settings

from core.actor import BEAT
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


@shared_task(name="domains.continue_import", soft_time_limit=IMPORT_SOFT_TIME_LIMIT,
             time_limit=IMPORT_TIME_LIMIT, acks_late=True, ignore_result=True)
def continue_import(job_id: int) -> int:
    """The next step of ImportJob `job_id` while it hashes its passwords, HASH_CHUNK a
    task (one long task would outlive any time limit that still catches a hung worker);
    a job that is not running is skipped. Takes only the id, like run_import."""
    return csv_io.continue_job(int(job_id))


@shared_task(name="domains.sweep_import_jobs", soft_time_limit=300, time_limit=330,
             ignore_result=True)
def sweep_import_jobs() -> int:
    """Beat's sweep of import jobs past their lifetime (services.sweep_import_jobs)."""
    return services.sweep_import_jobs()


@shared_task(name="domains.remove_kept_maildir", acks_late=True, ignore_result=True,
             soft_time_limit=180, time_limit=210)
def remove_kept_maildir(kept_id: int, path: str) -> bool:
    """On the mail host's own queue: remove a kept Maildir through the root helper.

    Takes the path too only to check it against the row: a message for a row
    whose recorded path differs (or that is no longer open) removes nothing.
    """
    return services.remove_kept_maildir(kept_id=int(kept_id), path=str(path))


@shared_task(name="domains.purge_expired_kept_maildirs", soft_time_limit=300, time_limit=330,
             ignore_result=True)
def purge_expired_kept_maildirs() -> int:
    """Beat's daily hand-over of kept Maildirs past MAILADMIN_KEPT_MAILDIR_DAYS."""
    return services.purge_expired_kept_maildirs()


@shared_task(name="domains.sync_quota_usage", soft_time_limit=240, time_limit=270,
             ignore_result=True)
def sync_quota_usage() -> int:
    """Beat's copy of Dovecot's quota file into the panel (SQLite daemons only: on
    MariaDB Dovecot writes the table itself and there is no file)."""
    path = settings.MAILADMIN_DOVECOT_QUOTA_DB
    if not os.path.exists(path):
        return 0
    return services.sync_quota_usage(actor=BEAT, path=path)
