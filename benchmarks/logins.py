"""IMAP logins per second against a private Dovecot, with and without its auth cache.

Run from the project root (as root: it starts Postfix and Dovecot on loopback
with the test harness, tests/integration/mailstack.py, and touches nothing
under /etc):

    .venv/bin/python benchmarks/logins.py [--mailboxes 10] [--clients 8]
                                          [--seconds 20] [--logins 4000]
                                          [--bcrypt-cost 12] [--label LABEL]

It makes an SQLite database in a temporary directory with one domain and
`--mailboxes` mailboxes whose passwords are bcrypt at cost 12 (the default;
`--bcrypt-cost 4` shows what a login costs with next to no hashing),
renders the configuration with `render_config` three times: with
MAILADMIN_DOVECOT_AUTH_CACHE_SIZE 0 (no cache); with the default cache (10M)
in front of the plain SQL passdb (MAILADMIN_DOVECOT_LOGIN_CACHE=none), which
still runs bcrypt at every login; and with the default, the cache in front of
the Lua passdb (deploy/dovecot/mailadmin-login-cache.lua). For each it
starts Dovecot, signs every mailbox in once (which fills the cache), then
has `--clients` threads each log in and out over IMAP, round robin over the
mailboxes, until `--logins` logins or `--seconds` seconds,
whichever comes first. A refused login fails the run.

A fourth run is the default with MAILADMIN_DOVECOT_LOGIN_MODE=high-performance.

Goal: at least 200 logins per second from the cache. The summary, with the
load average before and after, is printed and written to
benchmarks/results/logins-<date>[-LABEL].json; the exit status is 1 when
neither the default nor the high-performance run meets the goal.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import imaplib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import load_average, run_attempts, setup_django

PROJECT = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT / "benchmarks" / "results"
GOAL_PER_SECOND = 200.0
PASSWORD = "benchmark horse battery"
DOMAIN = "bench.example"
BCRYPT_COST = 12


def make_mailboxes(count: int) -> list[str]:
    from django.core.management import call_command

    from core.actor import Actor
    from domains import services

    call_command("migrate", interactive=False, verbosity=0)
    actor = Actor.cli()
    services.create_domain(actor=actor, name=DOMAIN)
    addresses = [f"user{n}@{DOMAIN}" for n in range(count)]
    for address in addresses:
        services.create_mailbox(actor=actor, email=address, password=PASSWORD)
    return addresses


def login(port: int, user: str, password: str = PASSWORD) -> float:
    started = time.perf_counter()
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        imap.login(user, password)
    finally:
        # A refused login raised above; the logout only closes the connection.
        with contextlib.suppress(Exception):
            imap.logout()
    return time.perf_counter() - started


def hammer(port: int, users: list[str], clients: int, seconds: float, logins: int
           ) -> dict[str, Any]:
    """`clients` threads logging in and out until `logins` logins or `seconds` s."""
    latencies, elapsed, errors = run_attempts(
        lambda n: login(port, users[n % len(users)]), lambda n: users[n % len(users)],
        clients, seconds, logins)
    return {
        "logins": len(latencies),
        "seconds": round(elapsed, 2),
        "per_second": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 1) if latencies else None,
            "p95": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 1)
            if len(latencies) >= 20 else None,
            "max": round(latencies[-1] * 1000, 1) if latencies else None,
        },
        "errors": errors[:5],
    }


def run_mode(label: str, cache_size: str, args: argparse.Namespace, users: list[str],
             *, login_cache: bool = True, login_mode: str = "high-security"
             ) -> dict[str, Any]:
    from django.conf import settings
    from django.test import override_settings

    from tests.integration.mailstack import mail_stack

    lua = settings.MAILADMIN_DOVECOT_LOGIN_CACHE if login_cache else ""
    with override_settings(MAILADMIN_DOVECOT_AUTH_CACHE_SIZE=cache_size,
                           MAILADMIN_DOVECOT_LOGIN_CACHE=lua,
                           MAILADMIN_DOVECOT_LOGIN_MODE=login_mode), \
            mail_stack() as stack:
        rendered = (stack.etc / "dovecot" / "conf.d" / "90-mailadmin.conf").read_text()
        setting = next(line for line in rendered.splitlines()
                       if line.startswith("auth_cache_size"))
        setting += "; password check: " + ("Lua passdb" if lua else "SQL passdb")
        setting += f"; login processes: {login_mode}"
        port = stack.ports["imap"]
        print(f"{label}: {setting}; signing each mailbox in once ...", file=sys.stderr,
              flush=True)
        warm_started = time.perf_counter()
        for user in users:
            login(port, user)
        warm = time.perf_counter() - warm_started
        print(f"{label}: {args.clients} clients, up to {args.logins} logins or "
              f"{args.seconds:g} s ...", file=sys.stderr, flush=True)
        result = hammer(port, users, args.clients, args.seconds, args.logins)
        result["first_logins_per_second"] = round(len(users) / warm, 2)
        result["setting"] = setting
        print(f"{label}: {result['per_second']} logins/s ({result['logins']} in "
              f"{result['seconds']} s, p50 {result['latency_ms']['p50']} ms)",
              file=sys.stderr, flush=True)
        return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="time limit of each timed run")
    parser.add_argument("--logins", type=int, default=4000,
                        help="login limit of each timed run")
    parser.add_argument("--bcrypt-cost", type=int, default=BCRYPT_COST,
                        help="cost of the mailboxes' hashes (4 shows what IMAP logins "
                        "cost with next to no hashing)")
    parser.add_argument("--label", default="")
    parser.add_argument("--modes", default="none,sql,fast", type=lambda v: v.split(","),
                        help="which runs besides the default's (the cache in front of the "
                        "Lua passdb): none (no cache), sql (the cache in front of the SQL "
                        "passdb), fast (the default with high-performance login processes)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: it starts Postfix and Dovecot", file=sys.stderr)
        return 2
    data_dir = Path(tempfile.mkdtemp(prefix="mailadmin-logins-"))
    data_dir.chmod(0o755)
    try:
        setup_django(data_dir, MAILADMIN_BCRYPT_ROUNDS=str(args.bcrypt_cost))
        load_before = load_average()
        print(f"making {args.mailboxes} mailboxes (bcrypt cost {args.bcrypt_cost}) ...",
              file=sys.stderr, flush=True)
        users = make_mailboxes(args.mailboxes)
        size = os.environ.get("MAILADMIN_DOVECOT_AUTH_CACHE_SIZE", "10M")
        skipped: dict[str, Any] = {"skipped": True, "per_second": 0.0, "errors": []}
        without = (run_mode("no cache", "0", args, users)
                   if "none" in args.modes else skipped)
        sql_cache = (run_mode("auth cache, SQL passdb", size, args, users, login_cache=False)
                     if "sql" in args.modes else skipped)
        with_cache = run_mode("auth cache, Lua passdb", size, args, users)
        fast = (run_mode("auth cache, Lua passdb, high-performance login", size, args, users,
                         login_mode="high-performance")
                if "fast" in args.modes else skipped)
        load_after = load_average()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    errors = [r["errors"] for r in (without, sql_cache, with_cache, fast) if r["errors"]]
    met = not errors and with_cache["per_second"] >= GOAL_PER_SECOND
    met_fast = not errors and fast["per_second"] >= GOAL_PER_SECOND
    summary = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "bcrypt_cost": args.bcrypt_cost,
        "mailboxes": args.mailboxes,
        "clients": args.clients,
        "without_cache": without,
        # Dovecot's cache in front of the SQL passdb: it keeps the stored hash
        # and runs bcrypt again at every login (the rendering before the Lua passdb).
        "with_cache_sql_passdb": sql_cache,
        "with_cache": with_cache,
        # MAILADMIN_DOVECOT_LOGIN_MODE=high-performance (not the default).
        "with_cache_high_performance_login": fast,
        "speedup": round(with_cache["per_second"] / without["per_second"], 1)
        if without["per_second"] else None,
        "goal_per_second": GOAL_PER_SECOND,
        "goal_met": met,
        "goal_met_high_performance_login": met_fast,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    label = args.label or ("" if args.bcrypt_cost == BCRYPT_COST else f"cost{args.bcrypt_cost}")
    name = f"logins-{datetime.date.today().isoformat()}{'-' + label if label else ''}"
    out = RESULTS_DIR / f"{name}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"written to {out.relative_to(PROJECT)}", file=sys.stderr)
    return 0 if met or met_fast else 1


if __name__ == "__main__":
    sys.exit(main())
