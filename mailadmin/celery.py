"""The Celery app. With no broker configured, tasks run inline (see settings)."""

import os
from typing import Any

from celery import Celery, Task
from django.db import InterfaceError, OperationalError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailadmin.settings")


class OutageTolerantTask(Task):  # type: ignore[misc]
    """Every task on a worker waits out a database outage (MariaDB restarting,
    SQLite's file unreadable): retried after growing, jittered pauses of up to
    2 minutes, 8 times (at most about 9 minutes in all), then failed; the worker
    itself goes on. Every task is safe to run twice (core.jobs claims), so a
    retry never does the work twice.
    """

    autoretry_for = (OperationalError, InterfaceError)
    retry_backoff = 5
    retry_backoff_max = 120
    max_retries = 8

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        error = kwargs.get("exc")
        if self.request.is_eager and isinstance(error, self.autoretry_for):
            # Inline (no broker) the request that ran it says so at once (core.outage),
            # instead of retrying back to back while a page waits.
            raise error
        return super().retry(*args, **kwargs)


app = Celery("mailadmin", task_cls=OutageTolerantTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
