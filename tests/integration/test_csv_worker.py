"""A CSV import through a real Redis broker and a real worker process: the
confirm enqueues the task by name on commit (core.jobs), the worker claims,
imports and finishes the job, and the job page follows it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from domains import passwords
from domains.models import ImportJob, Mailbox
from tests.conftest import World
from tests.domains.test_csv import PLAIN, upload
from tests.integration.test_celery_worker import (  # noqa: F401 (fixtures)
    Celery,
    _wait_for,
    celery,
    celery_env,
)

pytestmark = pytest.mark.daemons


def test_a_confirmed_import_runs_on_the_worker(celery: Celery, world: World) -> None:  # noqa: F811
    client = world.client_for("admin_a")
    content = f"email,password_hash\nnew1@a.example,{world.bob.password}\n"
    assert upload(client, "a.example", "mailboxes", content).status_code == 200
    job = ImportJob.objects.get()
    assert job.state == ImportJob.State.QUEUED
    response = client.post(reverse("domains:import-confirm", args=["a.example", job.pk]))
    assert response.status_code == 302
    _wait_for(lambda: ImportJob.objects.get(pk=job.pk).finished_state, celery,
              "the import on the worker")
    job.refresh_from_db()
    assert (job.state, job.done, job.rows, job.error) == ("done", 1, [], "")
    assert Mailbox.objects.filter(email="new1@a.example").exists()
    assert "domains.run_import" in celery.log("worker.log")
    page = client.get(reverse("domains:import-job", args=["a.example", job.pk])).content.decode()
    assert "Done: imported 1 mailbox into a.example." in page


def test_plaintext_and_generated_passwords_are_hashed_on_the_worker(
        celery: Celery, world: World) -> None:  # noqa: F811
    """The hashing happens in the worker, handed on to a continue_import task;
    neither the broker's log nor the worker's shows a password."""
    client = world.client_for("admin_a")
    assert upload(client, "a.example", "mailboxes",
                  f"email,password\nnew1@a.example,{PLAIN}\nnew2@a.example,\n").status_code == 200
    job = ImportJob.objects.get()
    client.post(reverse("domains:import-confirm", args=["a.example", job.pk]))
    _wait_for(lambda: ImportJob.objects.get(pk=job.pk).finished_state, celery,
              "the import on the worker")
    job.refresh_from_db()
    assert (job.state, job.done, job.rows, job.error) == ("done", 2, [], "")
    assert passwords.verify_password(PLAIN, Mailbox.objects.get(email="new1@a.example").password)
    log = celery.log("worker.log")
    assert "domains.continue_import" in log
    assert PLAIN not in log
    response = client.post(reverse("domains:import-passwords", args=["a.example", job.pk]))
    assert response.status_code == 200
    generated = response.content.decode().splitlines()[1].split(",", 1)[1]
    assert passwords.verify_password(generated,
                                     Mailbox.objects.get(email="new2@a.example").password)
    assert generated not in log
