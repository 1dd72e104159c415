"""Do Postfix and Dovecot keep answering while the panel writes a lot?

Run from the project root, as root (it starts Postfix and Dovecot on loopback
with the test harness, tests/integration/mailstack.py, and touches nothing
under /etc):

    .venv/bin/python benchmarks/daemon_lookups.py [--backend sqlite|mariadb|both]
        [--import 100000] [--delete 20000] [--interval 0.05] [--idle 5]
        [--database NAME] [--label LABEL]

For each backend (in a process of its own: Django's settings are per process)
it makes a database (SQLite: a file in a temporary directory, the embedded
default, read by the daemons through MAILADMIN_DATA_GROUP=postfix; MariaDB:
`--database`, default `mailadmin_daemon_lookups`, created and dropped, read
through the harness's read-only user), a probe mailbox and a domain of
`--delete` mailboxes, renders the configuration with the auth cache off (every
login reaches the database) and starts the daemons. Three loops then run, one
round every `--interval` s, throughout:

- `postmap -q` as user postfix against the rendered mailboxes.cf map, a new
  process each time (what a freshly started smtpd or proxymap does);
- an SMTP session to the running Postfix up to `RCPT TO:<probe>` (its smtpd,
  trivial-rewrite and proxymap processes are long-lived and keep the database
  open: 250 is the answer, 451 a failed lookup);
- `doveadm auth test` for the probe mailbox (Dovecot's SQL passdb).

A fourth loop, in the benchmark's own process, stands for another panel
request: every 10 rounds it creates a domain (its own database connection,
closed after each, as a request's is) and records how long that waited and
whether it failed.

While they run: `--idle` s of nothing, then `services.import_mailboxes` of
`--import` rows into a new domain (one transaction, all or nothing), then
`services.delete_domain(force=True)` of the domain of `--delete` mailboxes,
then `--idle` s of nothing again. Every lookup that does not give the probe's
answer, and every refused login, is a failure. Latency (wall time of each
lookup, process start included for the new-process loops) is given for idle
and during each write as p50/p99/max.

The summary, with the load average before and after, is printed and written to
benchmarks/results/daemon-lookups-<date>[-LABEL].json. Exit status 1 when any
lookup, login or panel write failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import PROJECT, load_average, setup_django

RESULTS_DIR = PROJECT / "benchmarks" / "results"
PROBE_DOMAIN, PROBE_PASSWORD = "probe.example", "probe passphrase 1"
PROBE = f"probe@{PROBE_DOMAIN}"
IMPORT_DOMAIN, DOOMED_DOMAIN = "import.example", "doomed.example"
MAP = "mailboxes.cf"
# Each failure's first words, kept for the report (a few of each loop).
KEEP_ERRORS = 5


@dataclass
class Loop:
    """One probe loop's samples: (phase, ok, seconds) and its first errors."""

    name: str
    samples: list[tuple[str, bool, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def record(self, phase: str, ok: bool, seconds: float, error: str = "") -> None:
        self.samples.append((phase, ok, seconds))
        if not ok and len(self.errors) < KEEP_ERRORS:
            self.errors.append(f"{phase}: {error.strip()[:300]}")

    def summary(self) -> dict[str, Any]:
        phases: dict[str, Any] = {}
        for phase in dict.fromkeys(p for p, _, _ in self.samples):
            times = sorted(s for p, _, s in self.samples if p == phase)
            failed = sum(1 for p, ok, _ in self.samples if p == phase and not ok)
            phases[phase] = {
                "lookups": len(times), "failed": failed,
                "p50_ms": round(times[len(times) // 2] * 1000, 1),
                "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))] * 1000, 1),
                "max_ms": round(times[-1] * 1000, 1),
            }
        return {"failed": sum(1 for _, ok, _ in self.samples if not ok), "phases": phases,
                "errors": self.errors}


class Probes:
    """The three loops, each in a thread, tagging samples with the current phase."""

    def __init__(self, stack: Any, expected: str, interval: float) -> None:
        self.stack, self.expected, self.interval = stack, expected, interval
        self.phase = "idle before"
        self.stopping = threading.Event()
        self.map = stack.map_path(MAP)
        self.loops = {name: Loop(name) for name in (
            "postmap -q, new process", "SMTP RCPT, running smtpd", "doveadm auth test",
            "panel write, another request")}
        self.threads = [threading.Thread(target=target, daemon=True) for target in (
            self._postmap_new, self._smtp_rcpt, self._doveadm, self._panel_write)]

    def __enter__(self) -> Probes:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _postmap_command(self, key: str) -> list[str]:
        return ["runuser", "-u", "postfix", "--", "/usr/sbin/postmap", "-c",
                str(self.stack.postfix_dir), "-q", key, self.map]

    def _postmap_new(self) -> None:
        loop = self.loops["postmap -q, new process"]
        while not self.stopping.wait(self.interval):
            phase, started = self.phase, time.perf_counter()
            result = subprocess.run(self._postmap_command(PROBE), capture_output=True,
                                    text=True, timeout=60)
            ok = result.returncode == 0 and result.stdout.strip() == self.expected \
                and "warning" not in result.stderr
            loop.record(phase, ok, time.perf_counter() - started,
                        f"exit {result.returncode} {result.stdout!r} {result.stderr}")

    def _smtp_rcpt(self) -> None:
        loop = self.loops["SMTP RCPT, running smtpd"]
        while not self.stopping.wait(self.interval):
            phase, started = self.phase, time.perf_counter()
            try:
                # A local_hostname of its own: the default asks the resolver (getfqdn) first.
                with smtplib.SMTP("127.0.0.1", self.stack.ports["smtp"], timeout=60,
                                  local_hostname="client.mailadmin.test") as smtp:
                    smtp.ehlo("client.mailadmin.test")
                    smtp.mail("sender@outside.test")
                    code, message = smtp.rcpt(PROBE)
                    answer = f"{code} {message.decode(errors='replace')}"
            except (OSError, smtplib.SMTPException) as error:
                code, answer = 0, repr(error)
            loop.record(phase, code == 250, time.perf_counter() - started, answer)

    def _panel_write(self) -> None:
        """Another panel request writing meanwhile (a new domain every 10 rounds):
        how long it waits for the long write, and whether it fails."""
        from django.db import connection

        from domains import services

        loop = self.loops["panel write, another request"]
        number = 0
        try:
            while not self.stopping.wait(self.interval * 10):
                phase, started = self.phase, time.perf_counter()
                number += 1
                try:
                    services.create_domain(actor="bench", name=f"other{number}.example")
                    ok, error = True, ""
                except Exception as exc:  # what the request would have shown
                    ok, error = False, repr(exc)
                loop.record(phase, ok, time.perf_counter() - started, error)
                connection.close()  # as at the end of a request
        finally:
            connection.close()

    def _doveadm(self) -> None:
        loop = self.loops["doveadm auth test"]
        while not self.stopping.wait(self.interval):
            phase, started = self.phase, time.perf_counter()
            result = self.stack.doveadm("auth", "test", PROBE, PROBE_PASSWORD)
            out = result.stdout + result.stderr
            loop.record(phase, "auth succeeded" in out, time.perf_counter() - started, out)


def cheap_hash() -> str:
    """A bcrypt hash at cost 4: the loops measure the database, not the hashing."""
    from passlib.hash import bcrypt

    return "{BLF-CRYPT}" + bcrypt.using(ident="2y", rounds=4).hash(PROBE_PASSWORD)


def prepare(delete_count: int) -> str:
    """The probe mailbox and the domain to delete; the probe's map answer."""
    from django.core.management import call_command

    from domains import services

    call_command("migrate", interactive=False, verbosity=0)
    hashed = cheap_hash()
    probe_domain = services.create_domain(actor="bench", name=PROBE_DOMAIN)
    services.import_mailboxes(actor="bench", domain=probe_domain, rows=[
        services.MailboxImport(email=PROBE, password_hash=hashed)])
    doomed = services.create_domain(actor="bench", name=DOOMED_DOMAIN)
    services.import_mailboxes(actor="bench", domain=doomed, rows=[
        services.MailboxImport(email=f"user{n}@{DOOMED_DOMAIN}", password_hash=hashed)
        for n in range(delete_count)])
    return "1"  # mailboxes.cf's answer for an active mailbox


def writes(probes: Probes, import_count: int, idle: float) -> dict[str, float]:
    from django.db import connection

    from domains import services
    from domains.models import Domain

    seconds: dict[str, float] = {}
    time.sleep(idle)
    hashed = cheap_hash()
    rows = [services.MailboxImport(email=f"user{n}@{IMPORT_DOMAIN}", password_hash=hashed)
            for n in range(import_count)]
    domain = services.create_domain(actor="bench", name=IMPORT_DOMAIN)
    probes.phase = "import"
    started = time.perf_counter()
    services.import_mailboxes(actor="bench", domain=domain, rows=rows)
    connection.close()  # as the request (or the import task) ends
    seconds["import"] = time.perf_counter() - started
    probes.phase = "between"
    time.sleep(1)
    probes.phase = "forced delete"
    started = time.perf_counter()
    services.delete_domain(actor="bench", domain=Domain.objects.get(name=DOOMED_DOMAIN),
                           force=True)
    connection.close()
    seconds["forced delete"] = time.perf_counter() - started
    probes.phase = "idle after"
    time.sleep(idle)
    return {name: round(value, 2) for name, value in seconds.items()}


def run_backend(args: argparse.Namespace) -> dict[str, Any]:
    """One backend, in this process: the summary as a dict."""
    workdir = Path(tempfile.mkdtemp(prefix="mailadmin-daemon-lookups-"))
    workdir.chmod(0o755)  # the daemons reach the SQLite file through it
    environ = {"MAILADMIN_DOVECOT_AUTH_CACHE_SIZE": "0", "MAILADMIN_DOVECOT_LOGIN_CACHE": ""}
    mariadb = args.backend == "mariadb"
    if mariadb:
        import lookups

        lookups.DB_NAME = args.database
        lookups.recreate_database()
        environ["MAILADMIN_DATABASE_URL"] = f"mysql://root@127.0.0.1:3306/{args.database}"
    try:
        setup_django(workdir / "data", **environ)
        from django.conf import settings
        from django.db import connection

        from tests.integration.mailstack import mail_stack

        print(f"{args.backend}: {args.delete} mailboxes to delete ...", file=sys.stderr,
              flush=True)
        expected = prepare(args.delete)
        journal = ""
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA journal_mode")
                journal = cursor.fetchone()[0]
        # With the auth cache off there is nothing to flush: the deletion's
        # "not flushed" complaints (no root helper here) are not this run's business.
        logging.getLogger("mailhost.auth_cache").setLevel(logging.CRITICAL)
        with mail_stack() as stack:
            connection.close()  # as a panel between two requests: the daemons alone
            print(f"{args.backend}: daemons up; idle {args.idle:g} s, import {args.import_count}"
                  f", forced delete of {args.delete} ...", file=sys.stderr, flush=True)
            with Probes(stack, expected, args.interval) as probes:
                seconds = writes(probes, args.import_count, args.idle)
        loops = {name: loop.summary() for name, loop in probes.loops.items()}
        return {
            "backend": args.backend,
            "database": settings.DATABASES["default"]["ENGINE"],
            "sqlite_journal_mode": journal or None,
            "write_seconds": seconds,
            "failed_lookups": loops["postmap -q, new process"]["failed"]
            + loops["SMTP RCPT, running smtpd"]["failed"],
            "failed_logins": loops["doveadm auth test"]["failed"],
            "failed_panel_writes": loops["panel write, another request"]["failed"],
            "loops": loops,
        }
    finally:
        if mariadb:
            lookups.drop_everything()
        shutil.rmtree(workdir, ignore_errors=True)


def print_summary(result: dict[str, Any]) -> None:
    print(f"\n{result['backend']} (journal mode {result['sqlite_journal_mode']}): "
          f"import {result['write_seconds']['import']} s, forced delete "
          f"{result['write_seconds']['forced delete']} s; failed lookups "
          f"{result['failed_lookups']}, failed logins {result['failed_logins']}, "
          f"failed panel writes {result['failed_panel_writes']}")
    for name, loop in result["loops"].items():
        print(f"  {name}")
        for phase, row in loop["phases"].items():
            print(f"    {phase:<14} {row['lookups']:>5} runs, {row['failed']:>4} failed, "
                  f"p50 {row['p50_ms']:>7.1f} ms, p99 {row['p99_ms']:>7.1f} ms, "
                  f"max {row['max_ms']:>7.1f} ms")
        for error in loop["errors"]:
            print(f"    ! {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "mariadb", "both"), default="both")
    parser.add_argument("--import", dest="import_count", type=int, default=100_000)
    parser.add_argument("--delete", type=int, default=20_000)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--database", default="mailadmin_daemon_lookups",
                        help="MariaDB database to create and drop (never a real one)")
    parser.add_argument("--label", default="", help="added to the results file's name")
    parser.add_argument("--json-out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.json_out:  # one backend, started by the run below
        Path(args.json_out).write_text(json.dumps(run_backend(args)))
        return 0

    started_at = datetime.datetime.now(datetime.UTC)
    load_before = load_average()
    results = []
    for backend in (("sqlite", "mariadb") if args.backend == "both" else (args.backend,)):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [sys.executable, __file__, "--backend", backend, "--json-out", out.name,
                       "--import", str(args.import_count), "--delete", str(args.delete),
                       "--interval", str(args.interval), "--idle", str(args.idle),
                       "--database", args.database]
            subprocess.run(command, check=True, cwd=PROJECT, env={
                k: v for k, v in os.environ.items()
                if not k.startswith("MAILADMIN_") and k != "DJANGO_SETTINGS_MODULE"})
            results.append(json.loads(Path(out.name).read_text()))
    for result in results:
        print_summary(result)
    summary = {
        "benchmark": "daemon_lookups", "started": started_at.isoformat(timespec="seconds"),
        "load_average_before": load_before, "load_average_after": load_average(),
        "import": args.import_count, "delete": args.delete, "interval_s": args.interval,
        "results": results,
    }
    print(f"load average before {load_before}, after {summary['load_average_after']}")
    name = f"daemon-lookups-{started_at.date().isoformat()}"
    path = RESULTS_DIR / f"{name}{'-' + args.label if args.label else ''}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"written to {path.relative_to(PROJECT)}")
    failed = any(r["failed_lookups"] or r["failed_logins"] or r["failed_panel_writes"]
                 for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
