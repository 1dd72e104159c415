"""DNS checks through a real Redis broker, a real worker process and real beat.

The worker and beat are `celery -A mailadmin` processes with the same settings
module, pointed at this test run's database. DNS goes to a closed loopback
port, so every lookup fails fast: this proves the plumbing, while
test_dnscheck_zones.py proves the verdicts against real DNS servers.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse

from dnscheck import services
from dnscheck.models import CheckRun
from domains import services as domain_services
from domains.models import Domain
from mailadmin.celery import app
from tests.conftest import World

pytestmark = pytest.mark.daemons
REDIS = "127.0.0.1:6379"
CELERY = str(Path(sys.executable).with_name("celery"))


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(f"redis://{REDIS}/0", socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 3306
    return f"mysql://{db['USER']}@{host}:{port}/{db['NAME']}"


class Celery:
    """A worker (and, on demand, beat) with their own Redis database and logs."""

    def __init__(self, tmp: Path, broker: str, extra_env: Mapping[str, str] = {}) -> None:
        self.tmp = tmp
        self.broker = broker
        self.env = {
            **os.environ,
            "MAILADMIN_DATABASE_URL": _database_url(),
            "MAILADMIN_CELERY_BROKER_URL": broker,
            "MAILADMIN_DATA_DIR": str(settings.DATA_DIR),
            "MAILADMIN_DNS_RESOLVERS": "127.0.0.1@9",
            "MAILADMIN_DNS_TIMEOUT": "0.2",
            "MAILADMIN_DNS_TRIES": "1",
            "MAILADMIN_DNSBL_ZONES": "zen.dnsbl.test",
            "MAILADMIN_DNSBL_DOMAIN_ZONES": "dbl.dnsbl.test",
            # The worker's fan-out spreads the domains over 2 s instead of an hour.
            "MAILADMIN_DNSCHECK_SPREAD_MINUTES": "0.033",
            # A test's own settings for the worker (celery_env), over the defaults above.
            **extra_env,
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, log: str, **env: str) -> subprocess.Popen[bytes]:
        with open(self.tmp / log, "wb") as out:
            process = subprocess.Popen([CELERY, "-A", "mailadmin", *args], stdout=out,
                                       stderr=subprocess.STDOUT, env={**self.env, **env},
                                       cwd=settings.BASE_DIR,
                                       # Its own process group: a test may kill it whole.
                                       start_new_session=True)
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.tmp / name).read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def celery_env() -> dict[str, str]:
    """Extra environment for the worker and beat; a module overrides this fixture to
    point them elsewhere (its DNS servers, say)."""
    return {}


@pytest.fixture
def celery(transactional_db, tmp_path: Path, celery_env: dict[str, str]) -> Iterator[Celery]:
    if not shutil.which(CELERY) or not _redis_up():
        message = f"needs Redis on {REDIS} and the celery command"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    import redis

    # A Redis database of its own: parallel runs and the developer's worker stay apart;
    # bin/test runs both backends at once, so each backend has its own databases.
    number = (8 if connection.vendor == "mysql" else 11) + secrets.randbelow(3)
    broker = f"redis://{REDIS}/{number}"
    redis.Redis.from_url(broker).flushdb()
    harness = Celery(tmp_path, broker, celery_env)
    harness.start("worker", "--concurrency=2", "--loglevel=INFO", "--without-gossip",
                  "--without-mingle", "--hostname", f"test{number}@%h", log="worker.log")
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url, app.conf.task_always_eager = broker, False
    _fresh_connections()
    try:
        _wait_for_worker(harness)
        yield harness
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        _fresh_connections()
        harness.stop()
        redis.Redis.from_url(broker).flushdb()


def _fresh_connections() -> None:
    # The app pools connections per broker URL; drop them so the next send
    # connects to the broker now configured (what Celery does after a fork).
    app._after_fork()


def _wait_for_worker(harness: Celery) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "ready." in harness.log("worker.log"):
            return
        if harness.processes[0].poll() is not None:
            break
        time.sleep(0.3)
    pytest.fail("the worker did not start:\n" + harness.log("worker.log"))


def _wait_for(condition, harness: Celery, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    pytest.fail(f"{what} did not happen in {timeout} s:\n{harness.log('worker.log')}")


def test_check_now_runs_on_the_worker_and_the_page_follows_it(celery: Celery,
                                                              world: World) -> None:
    client = world.client_for("admin_a")
    response = client.post(reverse("dnscheck:check", args=["a.example"]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    run = CheckRun.objects.get(domain=world.a)
    # The task went to Redis: this process answered before the run finished.
    assert 'hx-trigger="every' in response.content.decode()
    _wait_for(lambda: CheckRun.objects.get(pk=run.pk).state == CheckRun.State.DONE, celery,
              "the run on the worker")
    run.refresh_from_db()
    assert run.results.filter(check_name="mx").exists()
    # DNS was unreachable: unknown, never a false "ok" or a crash.
    assert run.results.get(check_name="mx").get_verdict_display() == "unknown"
    assert run.results.get(check_name="required-address", subject="postmaster").verdict == 3
    page = client.get(reverse("dnscheck:health", args=["a.example"]),
                      HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every' not in page
    assert "postmaster@a.example" in page
    assert "dnscheck.run_check" in celery.log("worker.log")


def test_a_domain_being_checked_is_not_checked_twice(celery: Celery, world: World) -> None:
    first = services.request_check(actor="root", domain=world.b)
    second = services.request_check(actor="root", domain=world.b)
    assert first.pk == second.pk
    _wait_for(lambda: CheckRun.objects.get(pk=first.pk).state == CheckRun.State.DONE, celery,
              "the run on the worker")
    # Both messages reached the worker; the second found nothing to claim.
    _wait_for(lambda: celery.log("worker.log").count("succeeded") >= 2, celery,
              "both deliveries")
    assert CheckRun.objects.filter(domain=world.b).count() == 1
    assert CheckRun.objects.get(pk=first.pk).results.filter(check_name="mx").count() == 1


def test_beat_fans_out_to_every_active_domain(celery: Celery, world: World) -> None:
    third = domain_services.create_domain(actor="test", name="c.example")
    domain_services.create_domain(actor="test", name="off.example", active=False)
    # Every 3.6 s, spread over 2 s: quick enough for a test, same code path.
    celery.start("beat", "--loglevel=INFO", "-s", str(celery.tmp / "beat-schedule"),
                 log="beat.log", MAILADMIN_DNSCHECK_INTERVAL_HOURS="0.001")
    active = {world.a.pk, world.b.pk, third.pk}
    _wait_for(lambda: set(CheckRun.objects.filter(state=CheckRun.State.DONE,
                                                  requested_by="beat")
                          .values_list("domain", flat=True)) >= active,
              celery, "a beat run of every domain", timeout=90)
    assert not CheckRun.objects.filter(domain__name="off.example").exists()
    assert "dnscheck.check_all" in celery.log("beat.log")
    # The spread: the domains' runs did not all start in the same instant.
    starts = sorted(CheckRun.objects.filter(requested_by="beat", domain__in=active)
                    .values_list("started", flat=True))
    assert starts[-1] > starts[0]
    assert Domain.objects.count() == 4
