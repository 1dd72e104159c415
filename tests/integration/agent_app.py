"""The Celery app for an agent worker started by a test against the private stack
(`celery -A tests.integration.agent_app worker -Q host.NAME`): the project's app,
rendering as the `applying` fixture does in the test process, with the harness's
own main.cf edits on top (EDITS_ENV), so that an apply leaves the stack working.
"""

from __future__ import annotations

import json
import os
from typing import Any

from celery.signals import task_prerun

from mailadmin.celery import app

__all__ = ["app"]


@task_prerun.connect
def _render_as_the_stack(**_: Any) -> None:
    # Django is set up by the time a task runs; the patch is made once.
    from mailhost import render
    from tests.integration.applying import EDITS_ENV, stack_render

    if getattr(render.render, "as_the_stack", False):
        return
    in_place, appended = json.loads(os.environ[EDITS_ENV])
    patched = stack_render(render.render, in_place, appended)
    patched.as_the_stack = True  # type: ignore[attr-defined]
    render.render = patched
