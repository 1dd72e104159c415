"""How long an IMAP login takes with an app password, against the main password.

Run from the project root as root (it starts Postfix and Dovecot on loopback
with the test harness, tests/integration/mailstack.py, and touches nothing
under /etc):

    .venv/bin/python benchmarks/app_password_logins.py [--mailboxes 10]
        [--sequential 40] [--clients 8] [--seconds 10] [--logins 1500]
        [--bcrypt-cost 12] [--modes lua,sql] [--label LABEL]

One domain, `--mailboxes` mailboxes, each with its main password and one
IMAP app password, both bcrypt at `--bcrypt-cost`. For each rendering (lua:
the default, the auth cache in front of the Lua login check; sql: the cache
in front of the plain SQL passdbs, MAILADMIN_DOVECOT_LOGIN_CACHE=none) it
signs every mailbox in once with each password (filling the cache), then
times `--sequential` logins one after another with each (the latency of one
login), then `--clients` threads for up to `--logins` logins or `--seconds`
seconds with each (logins per second). A refused login fails the run.
The summary is printed and written to
benchmarks/results/app-password-logins-<date>[-LABEL].json.
"""

from __future__ import annotations

import argparse
import datetime
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
from logins import BCRYPT_COST, PASSWORD, RESULTS_DIR, login, make_mailboxes

PROJECT = Path(__file__).resolve().parent.parent


def add_app_passwords(users: list[str]) -> dict[str, str]:
    from apppasswords import services
    from core.actor import Actor
    from domains.models import Mailbox

    return {user: services.create_app_password(
        actor=Actor.cli(), mailbox=Mailbox.objects.get(email=user), name="bench",
        protocols=["imap"]).token for user in users}


def sequential(port: int, credentials: list[tuple[str, str]], count: int) -> dict[str, float]:
    took = sorted(login(port, *credentials[n % len(credentials)]) for n in range(count))
    return {"p50_ms": round(statistics.median(took) * 1000, 1),
            "mean_ms": round(statistics.fmean(took) * 1000, 1),
            "max_ms": round(took[-1] * 1000, 1)}


def parallel(port: int, credentials: list[tuple[str, str]], clients: int, seconds: float,
             logins: int) -> dict[str, Any]:
    latencies, elapsed, errors = run_attempts(
        lambda n: login(port, *credentials[n % len(credentials)]),
        lambda n: credentials[n % len(credentials)][0], clients, seconds, logins)
    return {"logins": len(latencies), "seconds": round(elapsed, 2),
            "per_second": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
            "errors": errors[:5]}


def run_mode(label: str, lua: bool, args: argparse.Namespace, main: list[tuple[str, str]],
             app: list[tuple[str, str]]) -> dict[str, Any]:
    from django.conf import settings
    from django.test import override_settings

    from tests.integration.mailstack import mail_stack

    script = settings.MAILADMIN_DOVECOT_LOGIN_CACHE if lua else ""
    with override_settings(MAILADMIN_DOVECOT_LOGIN_CACHE=script), mail_stack() as stack:
        port = stack.ports["imap"]
        result: dict[str, Any] = {}
        for name, credentials in (("main_password", main), ("app_password", app)):
            print(f"{label}, {name}: first logins ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            for user, password in credentials:
                login(port, user, password)
            first = (time.perf_counter() - started) / len(credentials)
            one = sequential(port, credentials, args.sequential)
            many = parallel(port, credentials, args.clients, args.seconds, args.logins)
            result[name] = {"first_login_ms": round(first * 1000, 1), "sequential": one,
                            "parallel": many}
            print(f"{label}, {name}: one login p50 {one['p50_ms']} ms; "
                  f"{many['per_second']} logins/s with {args.clients} clients",
                  file=sys.stderr, flush=True)
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=10)
    parser.add_argument("--sequential", type=int, default=40)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--logins", type=int, default=1500)
    parser.add_argument("--bcrypt-cost", type=int, default=BCRYPT_COST)
    parser.add_argument("--modes", default="lua,sql", type=lambda v: v.split(","))
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: it starts Postfix and Dovecot", file=sys.stderr)
        return 2
    data_dir = Path(tempfile.mkdtemp(prefix="mailadmin-app-logins-"))
    data_dir.chmod(0o755)
    try:
        setup_django(data_dir, MAILADMIN_BCRYPT_ROUNDS=str(args.bcrypt_cost))
        load_before = load_average()
        users = make_mailboxes(args.mailboxes)
        tokens = add_app_passwords(users)
        main_credentials = [(user, PASSWORD) for user in users]
        app_credentials = [(user, tokens[user]) for user in users]
        runs = {mode: run_mode(f"{mode} rendering", mode == "lua", args, main_credentials,
                               app_credentials) for mode in args.modes}
        load_after = load_average()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    errors = [r[k]["parallel"]["errors"] for r in runs.values() for k in r
              if r[k]["parallel"]["errors"]]
    summary = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(), "load_average_before": load_before,
        "load_average_after": load_after, "bcrypt_cost": args.bcrypt_cost,
        "mailboxes": args.mailboxes, "clients": args.clients, "runs": runs,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = f"app-password-logins-{datetime.date.today().isoformat()}"
    out = RESULTS_DIR / f"{name}{'-' + args.label if args.label else ''}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"written to {out.relative_to(PROJECT)}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
