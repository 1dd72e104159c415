"""Celery tasks of the app passwords: copying their last use in from the mail host.

Without a broker they run inline (settings).
"""

from __future__ import annotations

import logging

from celery import shared_task

from apppasswords import services
from core.actor import BEAT
from core.jobs import enqueue_on_commit
from mailhost import privileged
from mailhost.models import MailHost

logger = logging.getLogger(__name__)

SYNC_TASK = "apppasswords.sync_usage"


@shared_task(name="apppasswords.request_usage_sync", soft_time_limit=60, time_limit=90,
             ignore_result=True)
def request_usage_sync() -> None:
    """Beat's: the usage file is on the mail host, so its agent syncs it, on its queue."""
    enqueue_on_commit(SYNC_TASK, queue=MailHost.current().queue)


@shared_task(name=SYNC_TASK, soft_time_limit=240, time_limit=270, ignore_result=True)
def sync_usage() -> int:
    """On the mail host's queue: services.sync_app_password_usage; the rows changed."""
    try:
        result = services.sync_app_password_usage(actor=BEAT)
    except privileged.HelperError as error:
        logger.error("App-password usage not synced: %s. The lines stay on the mail host "
                     "and are read at the next sync.", error)
        return 0
    if result.not_run:
        logger.info("App-password usage not synced: %s", result.not_run)
    elif result.skipped:
        logger.warning("App-password usage: %d of %d lines skipped (not as the login check "
                       "writes them)", result.skipped, result.lines)
    return result.updated
