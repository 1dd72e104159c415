"""One lifecycle for background jobs: queued -> running -> done or failed.

A job is a row (a model built on `Job`) that a Celery task works through:

- `enqueue_on_commit` sends the task, by name, once the transaction that
  created or confirmed the job commits: a service never imports its tasks
  module (tasks import services), and a worker never sees a job the
  database does not hold yet.
- `claim` moves it queued -> running in one UPDATE, so of two deliveries of
  the same task only one does the work.
- `progress` records how far a running job is, outside its transaction.
- `finish` and `fail` end it; both change only a job still open, so a job a
  sweep failed meanwhile is not brought back.
- A job whose worker dies ends as failed with the model's `lost_error`,
  never run again by itself (a kill is often the kernel's answer to a job
  too big, which a new delivery would meet again): at once when the pool
  child dies under a living worker (`fail_lost`, from task_failure); when
  the whole worker dies, as soon as a worker of the same node name starts
  (`fail_orphaned`: `claim` records the node name in `worker`); and, if no
  such worker comes back, once stale.
- A running job is stale once it has run longer than its task's hard time
  limit (`time_limit`) plus MAILADMIN_JOB_STALE_GRACE_SECONDS: the worker
  was killed or lost. `is_stale` tells a page, `sweep_stale` fails them, and
  `claim(..., reclaim_stale=True)` lets a job kind that is safe to run again
  take one over.
- A broker that does not take the task raises `QueueDown` after the commit;
  the caller's `refused` callback first brings the job row in line (failed,
  or back to where it was), so a row never waits for a task that was not sent.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from core import worker_life

log = logging.getLogger(__name__)


class Job(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED,
                             db_index=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    # The Celery node (`celery@host`) working on it now; empty when it runs
    # inline or waits between two tasks.
    worker = models.CharField(max_length=255, blank=True, default="", db_default="")

    # The hard time limit (seconds) of the task that runs this kind of job.
    time_limit: ClassVar[int] = 0
    # The tasks (by name) that work on this kind of job, their first argument its id.
    task_names: ClassVar[tuple[str, ...]] = ()
    # Why a job ends when its worker dies, and what else changes then.
    lost_error: ClassVar[str] = "the worker stopped before the job finished"
    lost_changes: ClassVar[dict[str, Any]] = {}

    class Meta:
        abstract = True

    @property
    def in_progress(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.RUNNING)

    @property
    def finished_state(self) -> bool:
        return self.state in (self.State.DONE, self.State.FAILED)

    def is_stale(self, now: datetime.datetime | None = None) -> bool:
        """Running for longer than its task may run: its worker is gone."""
        return (self.state == self.State.RUNNING and self.started is not None
                and (now or timezone.now()) - self.started > stale_after(type(self)))


class ProgressJob(Job):
    """A job that counts its steps, for a page that shows how far it is."""

    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


J = TypeVar("J", bound=Job)
OPEN = (Job.State.QUEUED, Job.State.RUNNING)


def stale_after(model: type[Job]) -> datetime.timedelta:
    """How long a job of `model` may run before it counts as cut off."""
    return datetime.timedelta(seconds=model.time_limit
                              + settings.MAILADMIN_JOB_STALE_GRACE_SECONDS)


def stale(model: type[J], now: datetime.datetime | None = None) -> QuerySet[J]:
    cutoff = (now or timezone.now()) - stale_after(model)
    return model._default_manager.filter(state=Job.State.RUNNING, started__lt=cutoff)


def claim(model: type[Job], pk: int, *, reclaim_stale: bool = False, **changes: Any) -> bool:
    """Queued -> running (with `changes`); whether this worker got the job.

    `reclaim_stale`: a stale running job may be claimed again, for kinds that
    can safely start over (a check), not for ones that may have half-written.
    """
    now = timezone.now()
    claimable = Q(state=Job.State.QUEUED)
    if reclaim_stale:
        claimable |= Q(state=Job.State.RUNNING, started__lt=now - stale_after(model))
    changes.setdefault("worker", current_worker())
    return bool(model._default_manager.filter(claimable, pk=pk)
                .update(state=Job.State.RUNNING, started=now, **changes))


def current_worker() -> str:
    """Who runs the current task: the Celery node name and the worker's life
    (core.worker_life, set as the worker starts); empty inline."""
    from celery import current_task

    request = current_task.request if current_task else None
    if request is None or request.is_eager:
        return ""
    node = str(request.hostname or "")
    life = worker_life.current()
    return f"{node} {life}" if node and life else node


def progress(model: type[ProgressJob], pk: int, done: int) -> None:
    # Autocommit, outside the job's own transaction: a polling page sees it at once.
    model._default_manager.filter(pk=pk).update(done=done)


def finish(model: type[Job], pk: int, **changes: Any) -> bool:
    """Running -> done; False, changing nothing, when the job is no longer running.

    `finished` may be given, for a job whose results carry the same time.

    The state is checked by the UPDATE itself, which holds the row's lock:
    called inside the job's transaction, a False lets the caller roll back.
    """
    changes.setdefault("finished", timezone.now())
    return bool(model._default_manager.filter(pk=pk, state=Job.State.RUNNING)
                .update(state=Job.State.DONE, **changes))


def fail(model: type[Job], pk: int, error: str, **changes: Any) -> bool:
    """Queued or running -> failed with `error`; False when the job had ended already."""
    return bool(model._default_manager.filter(pk=pk, state__in=OPEN).update(
        state=Job.State.FAILED, finished=timezone.now(), error=_fitted(model, error),
        **changes))


def sweep_stale(model: type[Job], error: str, **changes: Any) -> int:
    """Fail every stale running job of `model`; how many."""
    return stale(model).update(state=Job.State.FAILED, finished=timezone.now(),
                               error=_fitted(model, error), **changes)


def fail_lost(task_name: str, pk: int) -> bool:
    """The worker running task `task_name` for job `pk` died (its pool child was
    killed, or the task hit its hard time limit): the job fails. False when the
    task runs no job, or the job had ended."""
    model = next((m for m in job_models() if task_name in m.task_names), None)
    if model is None:
        return False
    return fail(model, pk, model.lost_error, **model.lost_changes)


def fail_orphaned(worker: str, before: datetime.datetime) -> int:
    """Fail the jobs a previous life of node `worker` held when it died: running
    under its name, started before this life began at `before`, by a life that
    is over (another boot of this machine, a process gone). How many.

    Celery only warns when two live workers share a node name (two workers on
    one host without --hostname, containers with one host name): a live
    namesake's jobs are left to it.
    """
    if not worker:
        return 0
    failed = 0
    for model in job_models():
        running = model._default_manager.filter(
            Q(worker=worker) | Q(worker__startswith=f"{worker} "),
            state=Job.State.RUNNING, started__lt=before)
        ended = [pk for pk, recorded in running.values_list("pk", "worker")
                 # A row from before lives were recorded: its node name is all there is.
                 if recorded == worker or worker_life.ended(recorded[len(worker) + 1:])]
        if ended:
            failed += running.filter(pk__in=ended).update(
                state=Job.State.FAILED, finished=timezone.now(),
                error=_fitted(model, model.lost_error), **model.lost_changes)
    return failed


def job_models() -> list[type[Job]]:
    from django.apps import apps

    return [m for m in apps.get_models() if issubclass(m, Job)]


class QueueDown(Exception):
    """The task queue (the broker) did not take a task; the message says what
    became of the request (not started, or waiting for a later retry)."""


# The job rows' error when their task could not be sent.
NOT_SENT = "the task queue was not answering, so it was not started"


def enqueue_on_commit(task_name: str, *args: object,
                      refused: Callable[[], str] | None = None, **options: object) -> None:
    """Send the Celery task `task_name` with `args` once the current transaction
    commits (at once outside one); `options` go to apply_async (queue=...,
    countdown=...). Inline, like every task, when no broker is configured.

    When the broker does not take it, `refused` runs (after the commit) to put
    the job row right and returns what became of the request ("the check was
    not started"); then QueueDown is raised with that, for the page to say.
    """
    transaction.on_commit(lambda: _send(task_name, args, options, refused))


def _send(task_name: str, args: tuple[object, ...], options: dict[str, Any],
          refused: Callable[[], str] | None) -> None:
    from celery import current_app

    if task_name not in current_app.tasks:
        # Registered when their module is imported; the worker imports them all at start.
        current_app.loader.import_default_modules()
    try:
        current_app.tasks[task_name].apply_async(args, **options)
    except BrokerError as error:
        log.error("task %s %s not sent, the broker is not answering: %s", task_name, args, error)
        what = refused() if refused else f"{task_name} was not started"
        raise QueueDown(f"The task queue is not answering: {what}.") from None


def _fitted(model: type[Job], error: str) -> str:
    limit = model._meta.get_field("error").max_length
    return error[:limit] if limit else error
