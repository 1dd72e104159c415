"""Background jobs: enqueue a Celery task by its name once the transaction commits.

By name, so the module that asks for a job never imports the tasks module
that calls back into it (tasks -> services, never the other way).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import current_app
from django.db import transaction


def enqueue_on_commit(task_name: str, *, args: Sequence[Any] = (), countdown: float = 0) -> None:
    """Send task `task_name` with `args` after the current transaction commits.

    Nothing is sent if it rolls back, and a worker never sees rows it cannot
    read yet. The task's own options (time limits, acks_late, routing by
    name) apply as when it is called directly. Without a broker (eager
    mode) a message sent by name would never run, so the task runs from the
    registry, which the installed apps' tasks modules fill.
    """

    def send() -> None:
        app = current_app
        if app.conf.task_always_eager:
            app.loader.import_default_modules()  # Celery's autodiscovery of <app>.tasks
            app.tasks[task_name].apply_async(tuple(args), countdown=countdown)
        else:
            app.send_task(task_name, args=tuple(args), countdown=countdown)

    transaction.on_commit(send)
