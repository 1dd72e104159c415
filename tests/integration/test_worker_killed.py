"""A worker killed in the middle of a CSV import (issue 14, section 3): the job
ends as failed, nothing of it is imported, and its page stops polling.

A real worker on the real Redis, killed with SIGKILL: the whole process group
(as systemd's stop timeout or the power does), then only the pool child running
the import (as the kernel's OOM killer does).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse

from core import worker_life
from domains import services
from domains.models import Domain, ImportJob, Mailbox
from tests.conftest import World
from tests.domains.test_csv import upload
from tests.integration.test_celery_worker import (  # noqa: F401 (fixtures)
    Celery,
    _wait_for,
    celery,
    celery_env,
)

pytestmark = pytest.mark.daemons

ROWS = 30_000
POLLING = 'hx-trigger="every'


def _big_import(client, world: World) -> tuple[Domain, ImportJob]:
    domain = services.create_domain(actor="t", name="big.example")
    lines = "".join(f"user{n:05}@big.example,{world.bob.password}\n" for n in range(ROWS))
    response = upload(client, "big.example", "mailboxes", "email,password_hash\n" + lines)
    assert response.status_code == 200
    job = ImportJob.objects.get(domain=domain)
    response = client.post(reverse("domains:import-confirm", args=["big.example", job.pk]))
    assert response.status_code == 302
    return domain, job


def _checked(job: ImportJob, harness: Celery) -> None:
    """Wait until every row is checked: the worker prepares the rows, then
    writes them in one short transaction."""
    _wait_for(lambda: ImportJob.objects.filter(pk=job.pk, state="running",
                                               done=ROWS).exists(),
              harness, "the import checking every row", timeout=120)


def _in_its_transaction(job: ImportJob, harness: Celery) -> None:
    """Return as soon as the worker is inside the one transaction that writes
    the rows (the rows it wrote are not visible from here). The transaction is
    short (the rows are prepared before it), so this looks often."""
    # MariaDB: rows written that this connection cannot see. SQLite: its one
    # write lock held (the next write after the last progress is the import's).
    inside = _rows_uncommitted if connection.vendor == "mysql" else _sqlite_write_locked
    deadline = time.monotonic() + 120
    while not inside():
        assert time.monotonic() < deadline, "the import never began its transaction:\n" + \
            harness.log("worker.log")
        assert ImportJob.objects.get(pk=job.pk).state == "running", "killed too late"
        time.sleep(0.01)
    if connection.vendor == "mysql":
        print(f"\nrows written, uncommitted, at the kill: {_uncommitted_rows()}")
    assert ImportJob.objects.get(pk=job.pk).state == "running", "killed too late"


def _rows_uncommitted() -> bool:
    return _uncommitted_rows() > 0


def _sqlite_write_locked() -> bool:
    """Whether another connection holds the SQLite database's write lock."""
    probe = sqlite3.connect(connection.settings_dict["NAME"], timeout=0)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:  # database is locked
        return True
    finally:
        probe.rollback()
        probe.close()
    return False


def _uncommitted_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT MAX(trx_rows_modified) FROM information_schema.innodb_trx")
        return int(cursor.fetchone()[0] or 0)


def _job_page(client, job: ImportJob) -> str:
    response = client.get(reverse("domains:import-job", args=["big.example", job.pk]),
                          HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


def test_a_worker_killed_whole_mid_import_fails_the_job_when_it_starts_again(
        celery: Celery, world: World) -> None:  # noqa: F811
    client = world.client_for("superadmin")
    domain, job = _big_import(client, world)
    _checked(job, celery)
    assert POLLING in _job_page(client, job)
    _in_its_transaction(job, celery)
    worker = celery.processes[0]
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(10)
    # Dead, and nothing of it committed; the page still follows it: a worker may yet come back.
    job.refresh_from_db()
    assert (job.state, job.worker) == ("running",
                                       f"{_node(celery)} {worker_life.of(pid=worker.pid)}")
    assert not Mailbox.objects.filter(domain=domain).exists()
    # systemd starts the worker again, under the same node name.
    killed_at = time.monotonic()
    _restart(celery)
    _wait_for(lambda: ImportJob.objects.get(pk=job.pk).finished_state, celery,
              "the new worker failing the orphaned job", timeout=60)
    print(f"\nfinal {time.monotonic() - killed_at:.1f} s after the kill "
          "(worker start included)")
    job.refresh_from_db()
    assert job.state == "failed" and "nothing was imported" in job.error
    assert job.rows == []
    assert not Mailbox.objects.filter(domain=domain).exists()
    page = _job_page(client, job)
    assert POLLING not in page
    assert "nothing was imported" in page
    # The unacknowledged message comes back one day (the broker's visibility
    # timeout): running it again imports nothing.
    from domains import tasks

    assert tasks.run_import(job.pk) == 0
    assert tasks.continue_import(job.pk) == 0
    assert not Mailbox.objects.filter(domain=domain).exists()
    assert "failed (it died while running them)" in celery.log("worker2.log")


def test_a_pool_child_killed_mid_import_fails_the_job_at_once(
        celery: Celery, world: World) -> None:  # noqa: F811
    client = world.client_for("superadmin")
    domain, job = _big_import(client, world)
    _checked(job, celery)
    _in_its_transaction(job, celery)
    killed_at = time.monotonic()
    for child in _children(celery.processes[0].pid):
        os.kill(child, signal.SIGKILL)
    _wait_for(lambda: ImportJob.objects.get(pk=job.pk).finished_state, celery,
              "the worker failing the job of its lost child", timeout=30)
    print(f"\nfinal {time.monotonic() - killed_at:.1f} s after the kill")
    job.refresh_from_db()
    assert job.state == "failed" and "nothing was imported" in job.error
    assert not Mailbox.objects.filter(domain=domain).exists()
    assert POLLING not in _job_page(client, job)
    assert "WorkerLostError" in celery.log("worker.log")
    # The worker goes on: the next import runs.
    content = f"email,password_hash\nafter@big.example,{world.bob.password}\n"
    assert upload(client, "big.example", "mailboxes", content).status_code == 200
    second = ImportJob.objects.filter(domain=domain).exclude(pk=job.pk).get()
    client.post(reverse("domains:import-confirm", args=["big.example", second.pk]))
    _wait_for(lambda: ImportJob.objects.get(pk=second.pk).state == "done", celery,
              "the next import")
    assert list(Mailbox.objects.filter(domain=domain).values_list("email", flat=True)) == [
        "after@big.example"]


def _node(harness: Celery) -> str:
    number = harness.broker.rsplit("/", 1)[1]
    return f"test{number}@{os.uname().nodename}"


def _restart(harness: Celery) -> None:
    number = harness.broker.rsplit("/", 1)[1]
    harness.start("worker", "--concurrency=2", "--loglevel=INFO", "--without-gossip",
                  "--without-mingle", "--hostname", f"test{number}@%h", log="worker2.log")
    _wait_for(lambda: "ready." in harness.log("worker2.log"), harness, "the new worker")

