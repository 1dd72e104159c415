"""How long `manage.py move_database` takes, and how much memory, at hosting scale.

Run from the project root (MariaDB on 127.0.0.1:3306, root without password):

    .venv/bin/python benchmarks/move_database.py [--mailboxes 20000,200000]
                                                 [--per-domain 20] [--label LABEL]

For each size it builds a SQLite panel in a temporary directory (in a process
of its own): the fixture of benchmarks/lookups.py (domains of 20 mailboxes,
their aliases and alias domains), plus one quota usage row and one audit row
a mailbox, one audit row a domain and one app password for every tenth
mailbox. Then it creates an empty MariaDB database `move_bench_<hex>` and
runs `manage.py move_database --to mysql://root@127.0.0.1:3306/move_bench_<hex>`
as an admin would, timing it and reading the peak resident memory of that
process (VmHWM in /proc, sampled every 50 ms, and the kernel's figure for it
and its children, which include the migrate it starts). It checks the counts
and one password hash in MariaDB, drops the database and the directory, prints
a summary with the load average before and after, writes it to
benchmarks/results/move-database-<date>[-LABEL].json, and exits 1 when a move
fails or a check does not hold. Memory must not grow with the panel: the
figures of the two sizes are printed side by side.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lookups  # the fixture and database plumbing are shared

PROJECT = lookups.PROJECT
RESULTS_DIR = lookups.RESULTS_DIR
LOAD_BATCH = 5000


def build(data_dir: Path, mailboxes: int, per_domain: int) -> None:
    """The SQLite panel (runs in its own process: Django is set up on data_dir)."""
    import harness

    harness.setup_django(data_dir)
    from django.core.management import call_command
    from passlib.hash import bcrypt

    from apppasswords.models import AppPassword
    from core.models import AuditEntry
    from domains.models import Domain, Mailbox, QuotaUsage

    call_command("migrate", verbosity=0)
    fixture = lookups.Fixture(domains=mailboxes // per_domain, per_domain=per_domain)
    hashed = "{BLF-CRYPT}" + bcrypt.using(ident="2y", rounds=4).hash("bench")
    lookups.load_fixture(fixture, hashed)

    def in_batches(rows: Any, model: Any) -> None:
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) >= LOAD_BATCH:
                model.objects.bulk_create(batch)
                batch = []
        model.objects.bulk_create(batch)

    domains = dict(Domain.objects.values_list("pk", "name"))
    in_batches(
        (
            AuditEntry(
                actor="bench",
                action="domain.create",
                object_type="domain",
                object_id=pk,
                object_repr=name,
                domain=name,
                domain_ref=pk,
                after={"id": pk, "name": name, "active": True},
            )
            for pk, name in domains.items()
        ),
        AuditEntry,
    )
    rows = Mailbox.objects.values_list("pk", "email", "domain_id").order_by("pk")
    in_batches(
        (
            AuditEntry(
                actor="bench",
                action="mailbox.create",
                object_type="mailbox",
                object_id=pk,
                object_repr=email,
                domain=domains[domain_id],
                domain_ref=domain_id,
                after={
                    "id": pk,
                    "domain_id": domain_id,
                    "email": email,
                    "name": "",
                    "quota": 0,
                    "active": True,
                    "password_changed": "2026-12-03T10:00:00+00:00",
                },
            )
            for pk, email, domain_id in rows.iterator(chunk_size=LOAD_BATCH)
        ),
        AuditEntry,
    )
    in_batches(
        (
            QuotaUsage(username=email, bytes=pk * 1000, messages=pk % 500)
            for pk, email, _ in rows.iterator(chunk_size=LOAD_BATCH)
        ),
        QuotaUsage,
    )
    in_batches(
        (
            AppPassword(
                mailbox_id=pk,
                name="phone",
                selector=f"{pk:08x}",
                lookup=hashlib.sha256(str(pk).encode()).hexdigest(),
                password=hashed,
            )
            for pk, _, _ in rows.iterator(chunk_size=LOAD_BATCH)
            if pk % 10 == 0
        ),
        AppPassword,
    )


def peak_rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def move_once(mailboxes: int, per_domain: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="mailadmin-move-"))
    data_dir = workdir / "data"
    name = f"move_bench_{secrets.token_hex(4)}"
    root = lookups.root_connection()
    try:
        print(f"building a SQLite panel of {mailboxes} mailboxes ...", flush=True)
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--build-into",
                str(data_dir),
                "--mailboxes",
                str(mailboxes),
                "--per-domain",
                str(per_domain),
            ],
            check=True,
            cwd=PROJECT,
        )
        build_s = time.perf_counter() - started
        sqlite_file = data_dir / "mailadmin.sqlite3"
        root.cursor().execute(
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        env = {**os.environ, "MAILADMIN_DATA_DIR": str(data_dir)}
        env.pop("MAILADMIN_DATABASE_URL", None)
        print("moving it ...", flush=True)
        started = time.perf_counter()
        with (workdir / "out").open("w+") as out_file, (workdir / "err").open("w+") as err_file:
            child = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "move_database",
                    "--to",
                    f"mysql://root@127.0.0.1:3306/{name}",
                ],
                cwd=PROJECT,
                env=env,
                stdout=out_file,
                stderr=err_file,
            )
            hwm, usage = 0, None
            while usage is None:
                hwm = max(hwm, peak_rss_kb(child.pid))
                pid, status, rusage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    usage, child.returncode = rusage, os.waitstatus_to_exitcode(status)
                else:
                    time.sleep(0.05)
            move_s = time.perf_counter() - started
            out_file.seek(0)
            err_file.seek(0)
            out, err = out_file.read(), err_file.read()
        # The move process and the migrate it waited for (the larger of the two).
        children_kb = usage.ru_maxrss
        if child.returncode != 0:
            raise SystemExit(f"move_database failed: {err.strip().splitlines()[-1:]}")
        with sqlite3.connect(sqlite_file) as db:
            (users,) = db.execute("SELECT COUNT(*) FROM users").fetchone()
            (sample,) = db.execute(
                "SELECT password FROM users WHERE id = ?", (users // 2,)
            ).fetchone()
            (audit,) = db.execute("SELECT COUNT(*) FROM audit_log").fetchone()
        cursor = root.cursor()
        cursor.execute(f"SELECT COUNT(*) FROM `{name}`.users")
        moved_users = cursor.fetchone()[0]
        cursor.execute(f"SELECT password FROM `{name}`.users WHERE id = %s", (users // 2,))
        moved_sample = cursor.fetchone()[0]
        ok = users == moved_users == mailboxes and sample == moved_sample
        copied = [line for line in err.splitlines() if " row" in line and line.endswith(" s)")]
        return {
            "mailboxes": mailboxes,
            "audit_rows": audit,
            "sqlite_mb": round(sqlite_file.stat().st_size / 2**20, 1),
            "build_seconds": round(build_s, 1),
            "move_seconds": round(move_s, 1),
            "peak_rss_mb": round(hwm / 1024, 1),
            "peak_rss_mb_with_children": round(children_kb / 1024, 1),
            "tables": copied,
            "checks": "ok" if ok else "FAILED",
            "report": out.splitlines()[0],
        }
    finally:
        root.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        root.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mailboxes", default="20000,200000", help="comma-separated sizes, each moved once"
    )
    parser.add_argument("--per-domain", type=int, default=20)
    parser.add_argument("--label", default="", help="added to the results file's name")
    parser.add_argument("--build-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_into:
        build(args.build_into, int(args.mailboxes), args.per_domain)
        return 0
    started_at = datetime.datetime.now(datetime.UTC)
    load_before = lookups.load_average()
    runs = [move_once(int(size), args.per_domain) for size in args.mailboxes.split(",")]
    load_after = lookups.load_average()
    print(f"\nload average before {load_before}, after {load_after} ({os.cpu_count()} CPUs)")
    print(
        f"{'mailboxes':>10}{'audit rows':>12}{'SQLite MB':>11}{'move s':>9}"
        f"{'peak RSS MB':>13}{'+children':>11}  checks"
    )
    for run in runs:
        print(
            f"{run['mailboxes']:>10}{run['audit_rows']:>12}{run['sqlite_mb']:>11}"
            f"{run['move_seconds']:>9}{run['peak_rss_mb']:>13}"
            f"{run['peak_rss_mb_with_children']:>11}  {run['checks']}"
        )
    for run in runs:
        print(f"\n{run['mailboxes']} mailboxes, tables copied:")
        for line in run["tables"]:
            print("  " + line)
    label = f"-{args.label}" if args.label else ""
    out = RESULTS_DIR / f"move-database-{started_at:%Y-%m-%d}{label}.json"
    lookups.write_json(
        out,
        {
            "started": started_at.isoformat(),
            "arguments": vars(args),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "cpus": os.cpu_count(),
            "runs": runs,
        },
    )
    print(f"written to {out.relative_to(PROJECT)}")
    return 0 if all(run["checks"] == "ok" for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
