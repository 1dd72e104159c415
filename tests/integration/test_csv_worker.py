"""A CSV import through a real Redis broker and a real worker process: the
confirm enqueues the task by name on commit (core.jobs), the worker claims,
imports and finishes the job, and the job page follows it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from domains.models import ImportJob, Mailbox
from tests.conftest import World
from tests.domains.test_csv import upload
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
