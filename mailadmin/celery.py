"""The Celery app. With no broker configured, tasks run inline (see settings).

Also where a worker's death reaches the jobs it held (core.jobs): a pool child
killed (the kernel's OOM killer, a hard time limit) fails its job at once; a
whole worker killed (SIGKILL, a power cut, systemd's stop timeout) fails its
jobs when a worker of the same node name starts again.
"""

import datetime
import logging
import os
from typing import Any

from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery import Celery, Task, signals
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

log = logging.getLogger(__name__)
_started: dict[str, datetime.datetime] = {}


@signals.worker_init.connect
def _remember_start(sender: Any = None, **_: Any) -> None:
    # Before the first task is taken: a job claimed later is this life's own.
    from core import worker_life

    worker_life.begin()
    _started[str(getattr(sender, "hostname", ""))] = datetime.datetime.now(datetime.UTC)


@signals.worker_ready.connect
def _fail_orphaned_jobs(sender: Any = None, **_: Any) -> None:
    from django.db import connections

    from core import jobs

    worker = str(getattr(sender, "hostname", ""))
    started = _started.get(worker)
    if started is None:
        return
    from django.db import DatabaseError

    try:
        failed = jobs.fail_orphaned(worker, started)
        if failed:
            log.warning(
                "%s: %d job(s) of this worker's previous run failed (it died while running them)",
                worker,
                failed,
            )
    except DatabaseError as error:
        # The database not answering yet, or not migrated yet: the worker still starts,
        # and the stale sweep ends such jobs later. One line, not a traceback.
        log.warning("%s: could not look for jobs of a previous run: %s", worker, error)
    finally:
        connections.close_all()


@signals.task_failure.connect
def _fail_job_of_lost_worker(
    sender: Any = None, exception: BaseException | None = None, args: Any = None, **_: Any
) -> None:
    # Sent by the main process when a pool child died or hit the hard time limit:
    # the task had no chance to end its job itself.
    if not isinstance(exception, WorkerLostError | TimeLimitExceeded) or not args:
        return
    from core import jobs

    name = str(getattr(sender, "name", ""))
    try:
        job_id = int(args[0])
    except (TypeError, ValueError):
        return
    from django.db import connections

    try:
        if jobs.fail_lost(name, job_id):
            log.warning(
                "%s for job %s: its worker was lost (%s); the job failed", name, job_id, exception
            )
    finally:
        # The main process forks the next pool child: it must not inherit a connection.
        connections.close_all()
