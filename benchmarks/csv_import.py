"""A CSV import of plaintext passwords: the preview request, then the import
on a real Celery worker, with the job page polled throughout.

Run from the project root (needs Redis on 127.0.0.1:6379; uses its database 15):

    .venv/bin/python benchmarks/csv_import.py [--rows 10000] [--run-rows 500]
                                              [--label LABEL]

It makes an SQLite database in a temporary directory with one domain and a
superadmin, and a file of `--rows` mailboxes: three in four with a typed
plaintext password, one in four empty (generated). It times the preview
request of that file (the policy check, no hashing). Then it imports the
first `--run-rows` rows of it through the panel's confirm and a
`celery -A mailadmin worker` (--concurrency=2) at the default
MAILADMIN_BCRYPT_ROUNDS, polling the job page twice a second as the
browser does and timing each answer, and extrapolates the worker time to
`--rows` (hashing is linear in the rows; the import's one transaction is a
few seconds even at 100,000 rows, benchmarks/lookups.py). With
`--run-rows` equal to `--rows`, nothing is extrapolated.

The summary, with the load average before and after, is printed and written
to benchmarks/results/csv-import-<date>[-LABEL].json.
"""

from __future__ import annotations

import argparse
import datetime
import grp
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import PROJECT, load_average, setup_django

RESULTS_DIR = PROJECT / "benchmarks" / "results"
DOMAIN = "bench.example"
BROKER = "redis://127.0.0.1:6379/15"
ADMIN = "root@admin.test"
ADMIN_PASSWORD = "benchmark admin pw 1"


def csv_file(rows: int) -> bytes:
    lines = ["email,password"]
    for n in range(rows):
        lines.append(f"user{n}@{DOMAIN}," + ("" if n % 4 == 3 else f"Benchmark pw {n:06d}!"))
    return ("\n".join(lines) + "\n").encode()


def upload(client: Any, content: bytes) -> tuple[float, Any]:
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    started = time.perf_counter()
    response = client.post(reverse("domains:import", args=[DOMAIN]), {
        "kind": "mailboxes",
        "file": SimpleUploadedFile("f.csv", content, content_type="text/csv")})
    return time.perf_counter() - started, response


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--run-rows", type=int, default=500)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="mailadmin-csv-bench-"))
    data.chmod(0o755)
    worker: subprocess.Popen[bytes] | None = None
    broker_used = False
    try:
        setup_django(data, MAILADMIN_CELERY_BROKER_URL=BROKER,
                     MAILADMIN_DATA_GROUP=grp.getgrgid(os.getgid()).gr_name)
        import redis
        from django.conf import settings
        from django.core.management import call_command
        from django.test import Client
        from django.urls import reverse

        from accounts import services as account_services
        from domains import services
        from domains.models import ImportJob, Mailbox

        redis.Redis.from_url(BROKER).flushdb()
        broker_used = True
        call_command("migrate", interactive=False, verbosity=0)
        services.create_domain(actor="bench", name=DOMAIN)
        admin = account_services.create_admin(actor="bench", username=ADMIN,
                                              password=ADMIN_PASSWORD, superadmin=True)
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(admin)
        load_before = load_average()

        content = csv_file(args.rows)
        preview_seconds, response = upload(client, content)
        assert response.status_code == 200, response.content[-3000:]
        full_job = ImportJob.objects.get()
        assert full_job.total == args.rows
        ImportJob.objects.all().delete()

        run_content = b"".join(content.splitlines(keepends=True)[:args.run_rows + 1])
        run_preview_seconds, response = upload(client, run_content)
        assert response.status_code == 200
        job = ImportJob.objects.get()

        log = data / "worker.log"
        with open(log, "wb") as out:
            worker = subprocess.Popen(
                [str(Path(sys.executable).parent / "celery"), "-A", "mailadmin", "worker",
                 "--concurrency=2", "--loglevel=INFO", "--without-gossip", "--without-mingle",
                 "--hostname", "csvbench@%h"],
                # setup_django put the data directory and the broker in os.environ.
                stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT, env=dict(os.environ))
        deadline = time.monotonic() + 60
        while b"ready." not in log.read_bytes():
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit("the worker did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.5)

        page = reverse("domains:import-job", args=[DOMAIN, job.pk])
        started = time.perf_counter()
        confirm = client.post(reverse("domains:import-confirm", args=[DOMAIN, job.pk]))
        confirm_seconds = time.perf_counter() - started
        assert confirm.status_code == 302
        latencies: list[float] = []
        progress: list[tuple[float, int]] = []
        while True:
            asked = time.perf_counter()
            answer = client.get(page, HTTP_HX_REQUEST="true")
            latencies.append(time.perf_counter() - asked)
            assert answer.status_code == 200
            state = ImportJob.objects.values_list("state", "done").get(pk=job.pk)
            progress.append((round(time.perf_counter() - started, 1), state[1]))
            if state[0] in ("done", "failed"):
                break
            time.sleep(0.5)
        worker_seconds = time.perf_counter() - started
        job.refresh_from_db()
        assert job.state == "done", job.error
        assert Mailbox.objects.count() == args.run_rows
        latencies.sort()
        per_row = worker_seconds / args.run_rows
        summary: dict[str, Any] = {
            "date": datetime.date.today().isoformat(),
            "bcrypt_rounds": settings.MAILADMIN_BCRYPT_ROUNDS,
            "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            "rows": args.rows,
            "preview_request_seconds": round(preview_seconds, 2),
            "run_rows": args.run_rows,
            "run_preview_request_seconds": round(run_preview_seconds, 2),
            "confirm_request_seconds": round(confirm_seconds, 3),
            "worker_seconds": round(worker_seconds, 1),
            "worker_seconds_per_row": round(per_row, 3),
            "worker_minutes_for_rows": round(per_row * args.rows / 60, 1),
            "extrapolated": args.run_rows != args.rows,
            "job_page_polls": len(latencies),
            "job_page_ms": {
                "p50": round(statistics.median(latencies) * 1000, 1),
                "p95": round(latencies[max(0, int(len(latencies) * 0.95) - 1)] * 1000, 1),
                "max": round(latencies[-1] * 1000, 1),
            },
            "continue_tasks": log.read_text().count("domains.continue_import[") // 2,
            "progress_samples": progress[::max(1, len(progress) // 10)],
            "load_average_before": load_before,
            "load_average_after": load_average(),
        }
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if broker_used:
            redis.Redis.from_url(BROKER).flushdb()
        shutil.rmtree(data, ignore_errors=True)
    print(json.dumps(summary, indent=2))
    RESULTS_DIR.mkdir(exist_ok=True)
    name = f"csv-import-{summary['date']}{'-' + args.label if args.label else ''}.json"
    (RESULTS_DIR / name).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
