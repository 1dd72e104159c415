"""Section 6 of issue 10 on real processes: an apply requested through the
service goes to the host's own queue through a real Redis broker, and only a
worker consuming that queue (the host's agent) runs it; a general worker
never picks it up. The agent applies to the private stack through the real
root helper (the tests run as root) and mail is still delivered.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.actor import Actor
from mailhost import apply
from mailhost.models import ConfigApply, MailHost
from tests.integration.applying import applying, delivered, postconf, worker_env
from tests.integration.mailstack import MailStack
from tests.integration.test_celery_worker import (
    CELERY,
    REDIS,
    Celery,
    _fresh_connections,
    _redis_up,
)

pytestmark = [pytest.mark.daemons,
              pytest.mark.skipif(os.geteuid() != 0, reason="the helper runs as root")]

__all__ = ["applying"]  # the fixture, imported for pytest

NETWORKS = "127.0.0.254/32 10.11.12.0/24"


@pytest.fixture
def broker(applying: MailStack, tmp_path: Path, settings) -> Iterator[Celery]:
    """A Redis database of its own and a harness for workers started by the test;
    this process sends its tasks there. The agent renders with NETWORKS, a change."""
    if not shutil.which(CELERY) or not _redis_up():
        message = f"needs Redis on {REDIS} and the celery command"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    import redis

    from mailadmin.celery import app

    number = (8 if settings.DATABASES["default"]["ENGINE"].endswith("mysql") else 11) \
        + secrets.randbelow(3)
    url = f"redis://{REDIS}/{number}"
    redis.Redis.from_url(url).flushdb()
    env = {**worker_env(applying), "MAILADMIN_MYNETWORKS": NETWORKS}
    harness = Celery(tmp_path, url, env)
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = url, False
    _fresh_connections()
    try:
        yield harness
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        _fresh_connections()
        harness.stop()
        redis.Redis.from_url(url).flushdb()


def start_worker(harness: Celery, app: str, log: str, *queues: str) -> None:
    harness.start("-A", app, "worker", "--pool=solo", "--loglevel=INFO", "--without-gossip",
                  "--without-mingle", "--without-heartbeat",
                  "--hostname", f"{log}-{secrets.token_hex(3)}@%h",
                  *(["-Q", ",".join(queues)] if queues else []), log=log)
    wait_for(lambda: "ready." in harness.log(log), harness, log, f"{log} to start")


def wait_for(condition: Callable[[], bool], harness: Celery, log: str, what: str,
             timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if any(p.poll() is not None for p in harness.processes):
            break
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen:\n{harness.log(log)}")


def test_only_the_hosts_agent_runs_an_apply_from_its_queue(broker, applying):
    queue = MailHost.current().queue
    # The general worker runs the project's app on the default queue only.
    start_worker(broker, "mailadmin", "general.log")
    assert queue not in broker.log("general.log")

    requested = apply.request_apply(actor=Actor.account("alice"), check_only=False)

    # Sent on commit to the host's queue: the general worker never takes it.
    time.sleep(3)
    assert ConfigApply.objects.get(pk=requested.pk).state == "queued"
    assert "mailhost.apply_config[" not in broker.log("general.log")

    start_worker(broker, "tests.integration.agent_app", "agent.log", queue)
    wait_for(lambda: ConfigApply.objects.get(pk=requested.pk).state in ("done", "failed"),
             broker, "agent.log", "the apply on the agent")

    done = ConfigApply.objects.get(pk=requested.pk)
    assert (done.state, done.outcome, done.error) == ("done", "applied", ""), \
        broker.log("agent.log")
    assert done.reloaded == ["postfix"]
    assert postconf(applying, "mynetworks") == NETWORKS
    agent_log = broker.log("agent.log")
    assert "Task mailhost.apply_config[" in agent_log and "succeeded" in agent_log
    assert "mailhost.apply_config[" not in broker.log("general.log")
    delivered(applying)
