"""The task queue (Redis) down when a DNS check, an import or a host operation is
asked for: the page says what became of the request, the job rows agree with
what was sent, and asking again once Redis is back queues it.

A private redis-server on its own loopback port (the system one serves others),
stopped for real; tasks are not inline. No worker: a message in Redis is what
"queued" means here (test_celery_worker.py runs them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.urls import reverse

from core import jobs
from dkim.models import DkimKey
from dnscheck.models import CheckRun
from domains.models import ImportJob
from mailadmin.celery import app
from mailhost.models import ConfigApply, MailHost
from tests.conftest import World
from tests.domains.test_csv import upload

pytestmark = pytest.mark.daemons

DOWN = "The task queue is not answering"


class PrivateRedis:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        pytest.fail("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    def waiting(self, queue: str) -> int:
        import redis

        return int(redis.Redis.from_url(self.url).llen(queue))


@pytest.fixture
def broker(transactional_db, tmp_path: Path) -> Iterator[PrivateRedis]:
    if not shutil.which("redis-server"):
        if os.environ.get("CI"):
            pytest.fail("needs redis-server")
        pytest.skip("needs redis-server")
    server = PrivateRedis(tmp_path)
    server.start()
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = server.url, False
    # Drop the pooled connections so the next send goes to this broker.
    app._after_fork()
    try:
        yield server
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        app._after_fork()
        server.stop()


def test_a_dns_check_asked_while_the_queue_is_down_is_refused_and_said(
    broker: PrivateRedis, world: World
) -> None:
    client = world.client_for("admin_a")
    broker.stop()
    response = client.post(reverse("dnscheck:check", args=["a.example"]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    page = response.content.decode()
    assert jobs.NOT_SENT in page and 'hx-trigger="every' not in page
    run = CheckRun.objects.get(domain=world.a)
    assert (run.state, run.error) == ("failed", jobs.NOT_SENT)
    # Without htmx: the domain page with the message.
    response = client.post(reverse("dnscheck:check", args=["a.example"]), follow=True)
    assert f"{DOWN}: the DNS check was not started" in response.content.decode()
    assert not CheckRun.objects.filter(state__in=jobs.OPEN).exists()

    broker.start()
    response = client.post(reverse("dnscheck:check", args=["a.example"]), HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every' in response.content.decode()
    assert CheckRun.objects.filter(domain=world.a, state="queued").count() == 1
    assert broker.waiting("celery") == 1


def test_an_import_confirmed_while_the_queue_is_down_stays_a_preview(
    broker: PrivateRedis, world: World
) -> None:
    client = world.client_for("admin_a")
    content = f"email,password_hash\nnew1@a.example,{world.bob.password}\n"
    assert upload(client, "a.example", "mailboxes", content).status_code == 200
    job = ImportJob.objects.get()
    broker.stop()
    response = client.post(
        reverse("domains:import-confirm", args=["a.example", job.pk]), follow=True
    )
    page = response.content.decode()
    assert f"{DOWN}: the import was not started and nothing was written" in page
    # The same confirmation is offered again; the job waits as a preview, rows kept.
    assert reverse("domains:import-confirm", args=["a.example", job.pk]) in page
    job.refresh_from_db()
    assert (job.state, job.confirmed, len(job.rows)) == ("queued", None, 1)

    broker.start()
    client.post(reverse("domains:import-confirm", args=["a.example", job.pk]))
    job.refresh_from_db()
    assert job.state == "queued" and job.confirmed is not None
    assert broker.waiting("celery") == 1


def test_a_host_operation_asked_while_the_queue_is_down(
    broker: PrivateRedis, world: World, settings
) -> None:
    """An apply or a check is refused (failed, so it blocks no later one); a new DKIM
    key is kept and waits, since beat asks the host again for keys not made."""
    # Keys are made by the host's agent through its helper; this process runs none.
    settings.MAILADMIN_HELPER_COMMAND = ["/bin/false"]
    client = world.client_for("superadmin")
    queue = MailHost.current().queue
    broker.stop()
    for name, what in (("config-apply", "apply"), ("config-check", "check")):
        page = client.post(reverse(f"mailhost:{name}"), follow=True).content.decode()
        assert f"{DOWN}: the {what} was not started and nothing on the host changed" in page
    assert (
        list(ConfigApply.objects.values_list("state", "error")) == [("failed", jobs.NOT_SENT)] * 2
    )
    page = client.post(
        reverse("dkim:generate", args=["a.example"]),
        {"algorithm": "rsa", "bits": "2048"},
        follow=True,
    ).content.decode()
    key = DkimKey.objects.get(domain=world.a)
    assert f"{DOWN}: the key {key.owner} is recorded and waits" in page
    assert key.state == "pending" and "task queue was not answering" in key.problem

    broker.start()
    client.post(reverse("mailhost:config-apply"))
    assert ConfigApply.objects.filter(state="queued").count() == 1
    assert broker.waiting(queue) == 1
