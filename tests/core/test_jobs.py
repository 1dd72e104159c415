"""core.jobs: the one lifecycle of background jobs, on the CSV import's job."""

from __future__ import annotations

import datetime
import importlib
import os
import subprocess

import pytest
from django.utils import timezone

from core import jobs, worker_life
from domains.models import ImportJob
from tests.conftest import EDITOR, apps_at

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(world) -> ImportJob:
    return ImportJob.objects.create(domain=world.a, kind="aliases", actor="t", total=2,
                                    rows=[["x@a.example", "bob@a.example", True]])


def _state(job: ImportJob) -> str:
    job.refresh_from_db()
    return job.state


def test_a_new_job_is_queued(job):
    assert job.state == ImportJob.State.QUEUED == "queued"
    assert job.in_progress and not job.finished_state


def test_only_one_claim_gets_a_queued_job(job):
    assert jobs.claim(ImportJob, job.pk, done=0)
    assert not jobs.claim(ImportJob, job.pk, done=0)
    job.refresh_from_db()
    assert job.state == "running" and job.started is not None


def test_finish_ends_only_a_running_job(job):
    assert not jobs.finish(ImportJob, job.pk)  # never claimed
    assert _state(job) == "queued"
    jobs.claim(ImportJob, job.pk)
    jobs.progress(ImportJob, job.pk, 1)
    assert ImportJob.objects.get(pk=job.pk).done == 1
    assert jobs.finish(ImportJob, job.pk, done=2, rows=[])
    job.refresh_from_db()
    assert (job.state, job.done, job.rows) == ("done", 2, [])
    assert job.finished is not None and job.finished_state


def test_a_failed_job_stays_failed(job):
    jobs.claim(ImportJob, job.pk)
    assert jobs.fail(ImportJob, job.pk, "it broke", rows=[])
    assert not jobs.finish(ImportJob, job.pk)
    assert not jobs.fail(ImportJob, job.pk, "again")
    job.refresh_from_db()
    assert (job.state, job.error, job.rows) == ("failed", "it broke", [])


def test_a_job_running_past_its_time_limit_and_the_grace_is_stale(job, settings):
    settings.MAILADMIN_JOB_STALE_GRACE_SECONDS = 60
    limit = ImportJob.time_limit + 60
    jobs.claim(ImportJob, job.pk)
    now = timezone.now()
    ImportJob.objects.filter(pk=job.pk).update(started=now - datetime.timedelta(seconds=limit - 5))
    job.refresh_from_db()
    assert not job.is_stale(now)
    assert jobs.sweep_stale(ImportJob, "cut off") == 0
    ImportJob.objects.filter(pk=job.pk).update(started=now - datetime.timedelta(seconds=limit + 5))
    job.refresh_from_db()
    assert job.is_stale(now)
    assert not jobs.claim(ImportJob, job.pk)
    assert jobs.sweep_stale(ImportJob, "cut off", rows=[]) == 1
    job.refresh_from_db()
    assert (job.state, job.error, job.rows) == ("failed", "cut off", [])
    assert not job.is_stale(now)


def test_a_stale_job_can_be_claimed_again_when_its_kind_allows(job, settings):
    jobs.claim(ImportJob, job.pk)
    long_ago = timezone.now() - jobs.stale_after(ImportJob) - datetime.timedelta(seconds=1)
    ImportJob.objects.filter(pk=job.pk).update(started=long_ago)
    assert jobs.claim(ImportJob, job.pk, reclaim_stale=True)
    job.refresh_from_db()
    assert job.state == "running" and job.started > long_ago


def test_enqueue_on_commit_sends_the_task_by_name_after_the_commit(
        job, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        jobs.enqueue_on_commit("domains.run_import", job.pk)
        assert _state(job) == "queued"  # nothing is sent before the commit
    assert len(callbacks) == 1
    callbacks[0]()  # the commit: eager Celery (no broker) runs the task inline
    job.refresh_from_db()
    assert (job.state, job.done) == ("done", 1)


def test_the_migration_carries_pending_jobs_forward_as_queued(world):
    """0006: the stored "pending" of earlier import jobs is the lifecycle's "queued"."""
    waiting = ImportJob.objects.create(domain=world.a, kind="aliases", actor="t")
    done = ImportJob.objects.create(domain=world.a, kind="aliases", actor="t", state="done")
    ImportJob.objects.filter(pk=waiting.pk).update(state="pending")  # as stored before
    migration = importlib.import_module("domains.migrations.0006_importjob_queued_state")
    migration.pending_to_queued(apps_at("domains", "0006_importjob_queued_state"), EDITOR)
    assert (_state(waiting), _state(done)) == ("queued", "done")
    migration.queued_to_pending(apps_at("domains", "0006_importjob_queued_state"), EDITOR)
    assert (_state(waiting), _state(done)) == ("pending", "done")


def test_a_worker_that_starts_again_fails_what_its_previous_life_held(world):
    """Every kind of job: the one its dead namesake ran fails, the others stay."""
    from dnscheck.models import CheckRun
    from mailhost.models import ConfigApply, MailHost

    before = timezone.now()
    earlier = before - datetime.timedelta(seconds=5)
    host = MailHost.current()
    common = {"state": "running", "started": earlier}
    held = [ImportJob.objects.create(domain=world.a, kind="aliases", actor="t",
                                     rows=[["x"]], worker="celery@mx", **common),
            CheckRun.objects.create(domain=world.a, worker="celery@mx", **common),
            ConfigApply.objects.create(host=host, worker="celery@mx", **common)]
    others = [ImportJob.objects.create(domain=world.a, kind="aliases", actor="t",
                                       worker="celery@other", **common),
              CheckRun.objects.create(domain=world.b, worker="", **common),
              # Claimed by the new life, after it started.
              CheckRun.objects.create(domain=world.b, worker="celery@mx", state="running",
                                      started=before + datetime.timedelta(seconds=1))]
    assert jobs.fail_orphaned("celery@mx", before) == 3
    for job in held:
        job.refresh_from_db()
        assert (job.state, job.error) == ("failed", type(job).lost_error)
        assert job.finished is not None
    assert held[0].rows == [] and held[2].outcome == "error"
    assert {type(o).objects.get(pk=o.pk).state for o in others} == {"running"}
    assert jobs.fail_orphaned("", before) == 0


@pytest.mark.processes
def test_a_live_namesake_keeps_its_jobs(world):
    """Celery only warns about two live workers of one node name (the README's two
    local workers are both celery@<host>; two containers may share a host name):
    a worker that starts fails what a dead life of its name held on this machine,
    never what a live namesake runs, here or elsewhere."""
    from dnscheck.models import CheckRun

    before = timezone.now()
    earlier = before - datetime.timedelta(seconds=5)
    ended = subprocess.Popen(["true"])
    ended.wait()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        def run(worker: str) -> CheckRun:
            return CheckRun.objects.create(domain=world.a, worker=worker, state="running",
                                           started=earlier)

        dead = [run(f"celery@mx {worker_life.of(pid=ended.pid)}"),
                run("celery@mx " + worker_life.of(pid=alive.pid).replace(
                    worker_life.of(pid=1).split("/")[1], "an-earlier-boot")),
                run(f"celery@mx {worker_life.of(pid=os.getpid())}")]
        living = [run(f"celery@mx {worker_life.of(pid=alive.pid)}"),
                  run("celery@mx elsewhere/" + worker_life.of(pid=ended.pid).split("/", 1)[1]),
                  run(f"celery@mxx {worker_life.of(pid=ended.pid)}")]
        assert jobs.fail_orphaned("celery@mx", before) == 3
        assert {CheckRun.objects.get(pk=r.pk).state for r in dead} == {"failed"}
        assert {CheckRun.objects.get(pk=r.pk).state for r in living} == {"running"}
    finally:
        alive.kill()
        alive.wait()


def test_a_lost_pool_child_fails_its_job_at_once(job):
    jobs.claim(ImportJob, job.pk)
    assert not jobs.fail_lost("dnscheck.send_report", job.pk), "that task runs no job"
    assert _state(job) == "running"
    assert jobs.fail_lost("domains.continue_import", job.pk)
    job.refresh_from_db()
    assert (job.state, job.rows) == ("failed", [])
    assert "nothing was imported" in job.error
    assert not jobs.fail_lost("domains.run_import", job.pk), "ended already"


def test_a_claim_inline_records_no_worker(job):
    jobs.claim(ImportJob, job.pk)
    job.refresh_from_db()
    assert job.worker == ""
