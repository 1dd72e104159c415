"""How fast the panel's busiest pages answer at 200,000 mailboxes, under gunicorn.

Run from the project root:

    .venv/bin/python benchmarks/pages.py [--backend mariadb|sqlite] [--database NAME]
                                         [--domains 10000] [--mailboxes 200000]
                                         [--requests 200]

It builds its own database (on MariaDB `mailadmin_pages` or --database,
dropped at the end; with --backend sqlite a file in a temporary directory,
the embedded default) with the fixture of benchmarks/lookups.py, starts
gunicorn on a free loopback port,
signs in as a superadmin and times sequential requests to the mailbox list, a
mailbox search, a domain's page and the dashboard (goal: p95 under 50 ms with
50 rows a page). In-process it also counts the SQL queries of each page, and
of the mailbox list with 10 and 100 rows a page: the count must not grow with
the page size (the test suite shows it does not grow with the rows either).
The summary, with the load average before and after the run (the machine may
be shared), is printed and written to
benchmarks/results/pages-<date>-<backend>[-<label>].json.
"""

from __future__ import annotations

import argparse
import datetime
import http.cookiejar
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lookups  # the fixture and database plumbing are shared

PROJECT = lookups.PROJECT
RESULTS_DIR = lookups.RESULTS_DIR
P95_GOAL_MS = 50.0
ADMIN, ADMIN_PASSWORD = "bench-admin", "bench admin passphrase"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pages(fixture: lookups.Fixture) -> dict[str, str]:
    middle = fixture.domains // 2
    return {
        "mailbox list": "/mailboxes/",
        "mailbox list, page 40": "/mailboxes/?page=40",
        "mailbox search": "/mailboxes/?q=user1",
        "mailbox search, page 40": "/mailboxes/?q=user1&page=40",
        "mailbox search, domain": f"/mailboxes/?q=user1&domain={fixture.domain(middle)}",
        "alias search": f"/domains/{fixture.domain(middle)}/aliases/?q=info",
        "domain search": "/domains/?q=domain12",
        "domain page": f"/domains/{fixture.domain(middle)}/",
        "all aliases": "/aliases/",
        "all aliases, page 40": "/aliases/?page=40",
        "new mailbox: domain picker": "/mailboxes/new/",
        "new mailbox: picker search": "/mailboxes/new/?q=domain12",
        "dashboard": "/",
    }


def sign_in(base: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    html = opener.open(f"{base}/login/", timeout=30).read().decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token on the sign-in page"
    form = urllib.parse.urlencode({"username": ADMIN, "password": ADMIN_PASSWORD,
                                   "csrfmiddlewaretoken": match.group(1), "next": "/"})
    response = opener.open(urllib.request.Request(
        f"{base}/login/", data=form.encode(), headers={"Referer": f"{base}/login/"}),
        timeout=30)
    assert response.url.rstrip("/") == base, f"sign-in failed, ended at {response.url}"
    return opener


def time_page(opener: urllib.request.OpenerDirector, url: str, count: int) -> dict[str, float]:
    opener.open(url, timeout=30).read()  # warm the worker's caches once
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = opener.open(url, timeout=30)
        response.read()
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, url
    samples.sort()
    return {"p50": statistics.median(samples), "p95": samples[int(len(samples) * 0.95) - 1],
            "max": samples[-1]}


def query_counts(fixture: lookups.Fixture) -> dict[str, dict[str, int]]:
    """SQL statements per page, and for the mailbox list with 10, 50 and 100 rows a page.

    That the count does not grow with the number of rows is shown by the test
    suite (5 against 55 rows); here it is the same page at 200,000 mailboxes.
    """
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from domains.views import mailboxes as views

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(User.objects.get(username=ADMIN))

    def count(url: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200, url
        return len(queries)

    result: dict[str, dict[str, int]] = {}
    for name, url in pages(fixture).items():
        result[name] = {"full size": count(url)}
    for size in (10, 100):
        views.PAGE_SIZE = size
        result["mailbox list"][f"{size} rows a page"] = count("/mailboxes/")
    views.PAGE_SIZE = 50
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("mariadb", "sqlite"), default="mariadb")
    parser.add_argument("--database", default="mailadmin_pages",
                        help="MariaDB database to create and drop (never a real one)")
    parser.add_argument("--label", default="", help="added to the results file's name")
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--mailboxes", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    fixture = lookups.Fixture(domains=args.domains, per_domain=args.mailboxes // args.domains)
    # Never the lookup benchmark's database, nor its read-only user.
    lookups.DB_NAME, lookups.RO_USER = args.database, f"{args.database}_ro"
    sqlite = args.backend == "sqlite"
    workdir = Path(tempfile.mkdtemp(prefix="mailadmin-pages-"))
    server: subprocess.Popen[bytes] | None = None
    started_at = datetime.datetime.now(datetime.UTC)
    load_before = lookups.load_average()
    try:
        if sqlite:
            (workdir / "data").mkdir(mode=0o700)
            database_url = f"sqlite:///{workdir / 'data' / 'pages.sqlite3'}"
        else:
            lookups.recreate_database()
            database_url = ""
        lookups.setup_django(workdir / "data", workdir / "etc", database_url)
        from django.core.management import call_command
        from passlib.hash import bcrypt

        from accounts.services import create_admin

        call_command("migrate", verbosity=0)
        print(f"loading {fixture.domains} domains, {fixture.mailboxes} mailboxes ...",
              flush=True)
        load_s = lookups.load_fixture(
            fixture, "{BLF-CRYPT}" + bcrypt.using(ident="2y", rounds=4).hash("bench"))
        create_admin(actor="bench", username=ADMIN, password=ADMIN_PASSWORD, superadmin=True)
        counts = query_counts(fixture)

        port = free_port()
        env = {**os.environ, "MAILADMIN_DEBUG": "0"}
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "mailadmin.wsgi",
             "--bind", f"127.0.0.1:{port}", "--workers", "2", "--log-level", "warning"],
            cwd=PROJECT, env=env)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/login/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        opener = sign_in(base)
        timings = {name: time_page(opener, base + url, args.requests)
                   for name, url in pages(fixture).items()}
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not sqlite:
            lookups.drop_everything()
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = lookups.load_average()

    print(f"\nbackend: {args.backend}; load average before {load_before}, after {load_after}"
          f" ({os.cpu_count()} CPUs)")
    print(f"fixture: {fixture.domains} domains, {fixture.mailboxes} mailboxes, loaded in "
          f"{load_s:.1f} s; {args.requests} sequential requests a page, gunicorn, 2 workers\n")
    print(f"{'page':<24}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}  queries  verdict")
    failed = False
    for name, timing in timings.items():
        ok = timing["p95"] < P95_GOAL_MS
        failed |= not ok
        print(f"{name:<24}{timing['p50']:>8.1f}{timing['p95']:>8.1f}{timing['max']:>8.1f}"
              f"  {counts[name]['full size']:>7}  {'ok' if ok else 'FAIL'}")
    print("\nSQL queries per request (must not grow with rows or page size):")
    for name, variants in counts.items():
        flat = len(set(variants.values())) == 1
        failed |= not flat
        shown = ", ".join(f"{k}: {v}" for k, v in variants.items())
        print(f"  {name}: {shown}{'' if flat else '  <- NOT FLAT'}")
    print(f"\n(goal: p95 < {P95_GOAL_MS:.0f} ms at 50 rows a page)")
    label = f"-{args.label}" if args.label else ""
    out = RESULTS_DIR / f"pages-{started_at:%Y-%m-%d}-{args.backend}{label}.json"
    lookups.write_json(out, {
        "started": started_at.isoformat(), "arguments": vars(args),
        "load_average_before": load_before, "load_average_after": load_after,
        "cpus": os.cpu_count(), "load_seconds": load_s, "p95_goal_ms": P95_GOAL_MS,
        "pages": {name: {"url": pages(fixture)[name], **timing,
                         "queries": counts[name]} for name, timing in timings.items()},
    })
    print(f"written to {out.relative_to(PROJECT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
