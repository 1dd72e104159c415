"""The panel under load: 20 clients for 60 s under gunicorn (issue 14, part 2).

Run from the project root:

    .venv/bin/python benchmarks/load.py [--backend sqlite|mariadb] [--database NAME]
                                        [--clients 20] [--seconds 60]
                                        [--domains 50] [--mailboxes 20000]
                                        [--import-rows 5000] [--label LABEL]

It builds its own database (with --backend sqlite, the embedded default, a
file in a temporary data directory; on MariaDB `load_bench` or --database,
dropped at the end), migrates it, bulk-loads the fixture of
benchmarks/lookups.py (50 domains of 400 mailboxes, their aliases and alias
domains) and an empty domain for the import, and makes one superadmin per
client. It starts gunicorn as deploy/systemd/mailadmin-web.service does
(the same --workers and --timeout, read from the unit) on a free loopback
port, with no broker (tasks inline, as on the embedded default) and no root
helper (as the web unit's environment says). Each client signs in through
the sign-in form and then, until the time is up, picks a weighted action:
a page of the mailbox list, a mailbox search, a domain's page, a domain's
alias list, the dashboard, or a write made as a browser makes it (the form
page, then its POST with the form's CSRF token): create or edit a mailbox
(at the default MAILADMIN_BCRYPT_ROUNDS), create or edit an alias. Half-way
through, client 0 imports a CSV file of `--import-rows` mailboxes with
password hashes through the import pages (upload, confirm, the job page).

Every request's status and latency are recorded. An error is an exception
(refused connection, time-out) or any status other than the one the action
must answer (200 for a page, 302 for a write that succeeded). Afterwards, with
gunicorn stopped, every write a client saw succeed is looked up: each created
mailbox and alias must be in its table with its create audit row under the
client's account; each client's edits must each have their update audit row;
the import's mailboxes must all be there with the import's audit rows. The
summary (requests per second, p50/p95/p99/max per action, errors, lost
writes), with the load average before and after, is printed and written to
benchmarks/results/load-<date>-<backend>[-<label>].json. It exits 1 on any
error or lost write.
"""

from __future__ import annotations

import argparse
import datetime
import http.cookiejar
import math
import os
import random
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lookups  # the fixture and database plumbing are shared
from pages import free_port

PROJECT = lookups.PROJECT
RESULTS_DIR = lookups.RESULTS_DIR
WEB_UNIT = PROJECT / "deploy" / "systemd" / "mailadmin-web.service"
ADMIN_PASSWORD = "load bench admin passphrase"
MAILBOX_PASSWORD = "Load bench mailbox pw 2026!"
IMPORT_DOMAIN = "import.example"
# A browser gives up long before this; a request this slow is an error anyway.
REQUEST_TIMEOUT = 60.0
# Relative weights of the actions; a write counts its form page and its POST.
MIX = {
    "mailbox list": 20,
    "mailbox search": 15,
    "domain page": 15,
    "alias list": 5,
    "dashboard": 5,
    "create mailbox": 10,
    "edit mailbox": 10,
    "create alias": 8,
    "edit alias": 7,
}
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


# ---------------------------------------------------------------- the gunicorn of the unit


def unit_gunicorn_options(unit: Path = WEB_UNIT) -> list[str]:
    """The gunicorn options of the web unit's ExecStart, minus the bind and the access log."""
    text = unit.read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    words = shlex.split(line.removeprefix("ExecStart="))
    options = words[words.index("mailadmin.wsgi") + 1:]
    kept: list[str] = []
    skip = False
    for word in options:
        if skip:
            skip = False
        elif word in ("--bind", "-b", "--access-logfile"):
            skip = True
        else:
            kept.append(word)
    return kept


# ---------------------------------------------------------------- one browser


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # The redirect after a write is the write's answer: timed, not followed.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Answer:
    status: int
    body: str
    location: str


class Browser:
    """A cookie jar and a connection to the panel, redirects not followed."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect())

    def request(self, path: str, data: bytes | None = None,
                content_type: str = "application/x-www-form-urlencoded") -> Answer:
        headers = {"Referer": self.base + path}
        if data is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base + path, data=data, headers=headers)
        try:
            with self.opener.open(request, timeout=REQUEST_TIMEOUT) as response:
                return Answer(response.status, response.read().decode(errors="replace"),
                              response.headers.get("Location", ""))
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            return Answer(error.code, body, error.headers.get("Location", ""))

    def post(self, path: str, token: str, fields: dict[str, str]) -> Answer:
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **fields}).encode()
        return self.request(path, data)

    def post_file(self, path: str, token: str, fields: dict[str, str], name: str,
                  content: bytes) -> Answer:
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                 f"{value}\r\n".encode()
                 for key, value in {"csrfmiddlewaretoken": token, **fields}.items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{name}.csv"\r\nContent-Type: text/csv\r\n\r\n'.encode()
                     + content + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        return self.request(path, b"".join(parts), f"multipart/form-data; boundary={boundary}")


def token_of(answer: Answer) -> str:
    match = CSRF.search(answer.body)
    if not match:
        raise AssertionError(f"no CSRF token in a {answer.status} answer")
    return match.group(1)


# ---------------------------------------------------------------- the clients


@dataclass
class Sample:
    kind: str
    status: int  # 0: no answer (an exception)
    ms: float
    error: str = ""


@dataclass
class Client:
    """One signed-in admin's run: its samples and the writes it saw succeed."""

    number: int
    username: str
    samples: list[Sample] = field(default_factory=list)
    mailboxes: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    edits: Counter[str] = field(default_factory=Counter)
    imported: int = 0
    import_job: int = 0


class Run:
    def __init__(self, base: str, fixture: lookups.Fixture, clients: int, seconds: float,
                 import_rows: int, import_hash: str) -> None:
        self.base, self.fixture, self.seconds = base, fixture, seconds
        self.import_rows, self.import_hash = import_rows, import_hash
        self.clients = [Client(n, admin_name(n)) for n in range(clients)]
        self.started = 0.0
        self.deadline = 0.0

    # -- timing

    def timed(self, client: Client, kind: str, expected: int, call: Any) -> Answer | None:
        started = time.perf_counter()
        try:
            answer: Answer = call()
        except Exception as error:  # no answer at all: recorded as an error
            client.samples.append(Sample(kind, 0, (time.perf_counter() - started) * 1000,
                                         repr(error)[:300]))
            return None
        ms = (time.perf_counter() - started) * 1000
        problem = "" if answer.status == expected else _problem_of(answer)
        client.samples.append(Sample(kind, answer.status, ms, problem))
        return None if problem else answer

    # -- the actions

    def sign_in(self, client: Client) -> Browser:
        browser = Browser(self.base)
        form = self.timed(client, "sign-in form", 200, lambda: browser.request("/login/"))
        assert form, "the sign-in page did not answer"
        done = self.timed(client, "sign in", 302, lambda: browser.post(
            "/login/", token_of(form),
            {"username": client.username, "password": ADMIN_PASSWORD, "next": "/"}))
        assert done and done.location == "/", f"{client.username} could not sign in"
        return browser

    def page(self, client: Client, browser: Browser, kind: str, path: str) -> None:
        self.timed(client, kind, 200, lambda: browser.request(path))

    def write(self, client: Client, browser: Browser, kind: str, form_path: str,
              fields: dict[str, str], post_path: str | None = None) -> bool:
        form = self.timed(client, f"{kind}: form", 200, lambda: browser.request(form_path))
        if form is None:
            return False
        token = token_of(form)
        done = self.timed(client, kind, 302, lambda: browser.post(
            post_path or form_path, token, fields))
        return done is not None

    def act(self, client: Client, browser: Browser, rng: random.Random, n: int) -> None:
        f = self.fixture
        d = rng.randrange(f.domains)
        domain = f.domain(d)
        kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
        tag = f"c{client.number}-{n}"
        if kind == "mailbox list":
            self.page(client, browser, kind, f"/mailboxes/?page={rng.randint(1, 40)}")
        elif kind == "mailbox search":
            self.page(client, browser, kind, f"/mailboxes/?q=user{rng.randrange(400)}")
        elif kind == "domain page":
            self.page(client, browser, kind, f"/domains/{domain}/")
        elif kind == "alias list":
            self.page(client, browser, kind, f"/domains/{domain}/aliases/")
        elif kind == "dashboard":
            self.page(client, browser, kind, "/")
        elif kind == "create mailbox":
            local = f"load-{tag}"
            if self.write(client, browser, kind, f"/domains/{domain}/mailboxes/new/", {
                    "local_part": local, "name": f"Load {tag}", "quota": "",
                    "password": MAILBOX_PASSWORD, "password_again": MAILBOX_PASSWORD}):
                client.mailboxes.append(f"{local}@{domain}")
        elif kind == "edit mailbox":
            email = f.mailbox(d, rng.randrange(f.per_domain))
            if self.write(client, browser, kind, f"/mailboxes/{email}/", {
                    "name": f"Edited {tag}", "quota": rng.choice(("1G", "2G", "0")),
                    "active": "on", "password": ""}):
                client.edits["mailbox.update"] += 1
        elif kind == "create alias":
            local = f"alias-{tag}"
            targets = f"{f.mailbox(d, 0)}\n{f.mailbox(d, rng.randrange(f.per_domain))}"
            if self.write(client, browser, kind, f"/domains/{domain}/aliases/new/", {
                    "kind": "address", "local_part": local, "destinations": targets}):
                client.aliases.append(f"{local}@{domain}")
        elif kind == "edit alias":
            # Somewhere new each time, so every edit changes the alias (and is audited).
            source = f"info@{domain}"
            if self.write(client, browser, kind, f"/aliases/{source}/", {
                    "destinations": f"{f.mailbox(d, 0)}, {tag}@elsewhere.example",
                    "active": "on"}):
                client.edits["alias.update"] += 1

    def csv_import(self, client: Client, browser: Browser) -> None:
        lines = ["email,password_hash,name"]
        lines += [f"import{n:06d}@{IMPORT_DOMAIN},{self.import_hash},Imported {n}"
                  for n in range(self.import_rows)]
        content = ("\n".join(lines) + "\n").encode()
        path = f"/domains/{IMPORT_DOMAIN}/import/"
        form = self.timed(client, "import: form", 200, lambda: browser.request(path))
        if form is None:
            return
        token = token_of(form)
        preview = self.timed(client, "import: upload", 200, lambda: browser.post_file(
            path, token, {"kind": "mailboxes"}, "file", content))
        if preview is None:
            return
        match = re.search(rf"{re.escape(path)}(\d+)/confirm/", preview.body)
        assert match, "the preview offers no confirm"
        job = int(match.group(1))
        confirm = self.timed(client, "import: confirm", 302, lambda: browser.post(
            f"{path}{job}/confirm/", token_of(preview), {}))
        if confirm is None:
            return
        # Tasks run inline: the confirm returns once the import is written.
        if self.timed(client, "import: job page", 200, lambda: browser.request(
                f"{path}{job}/")) is not None:
            client.imported, client.import_job = self.import_rows, job

    def client_loop(self, client: Client, ready: threading.Barrier) -> None:
        rng = random.Random(client.number)
        try:
            browser = self.sign_in(client)
        except Exception:
            ready.abort()  # the run cannot start; main() says why
            raise
        ready.wait()
        import_at = self.started + self.seconds / 2
        n = 0
        while time.perf_counter() < self.deadline:
            if client.number == 0 and not client.import_job and time.perf_counter() >= import_at:
                self.csv_import(client, browser)
                client.import_job = client.import_job or -1
                continue
            self.act(client, browser, rng, n)
            n += 1

    def _start_clock(self) -> None:
        self.started = time.perf_counter()
        self.deadline = self.started + self.seconds

    def run(self) -> float:
        """The wall time of the timed part (after every client has signed in)."""
        # The clock starts when the last client has signed in, before any is let go.
        ready = threading.Barrier(len(self.clients), action=self._start_clock)
        threads = [threading.Thread(target=self.client_loop, args=(c, ready), daemon=True)
                   for c in self.clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if ready.broken:
            raise SystemExit("a client could not sign in (see its traceback above)")
        return time.perf_counter() - self.started


def _problem_of(answer: Answer) -> str:
    """What a page of an unexpected status says, in one line."""
    text = re.sub(r"<[^>]+>", " ", answer.body)
    for pattern in (r"[\w.]*(?:Error|Exception)[^\n]{0,200}", r'class="error[^"]*"[^>]*>([^<]+)',
                    r"<title>([^<]*)"):
        match = re.search(pattern, answer.body if "class=" in pattern or "title" in pattern
                          else text)
        if match:
            return f"{answer.status}: {' '.join(match.group(0).split())[:200]}"
    return f"{answer.status} {answer.location}".strip()


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def admin_name(n: int) -> str:
    return f"load-admin-{n:02d}"


# ---------------------------------------------------------------- checks and figures


def lost_writes(run: Run) -> dict[str, Any]:
    """Every write a client saw succeed, looked up in the tables and the audit log."""
    from core.models import AuditEntry
    from domains.models import Alias, Domain, Mailbox

    def chunks(items: list[str]) -> list[list[str]]:
        return [items[i:i + 500] for i in range(0, len(items), 500)]

    def present(model: Any, column: str, wanted: list[str]) -> set[str]:
        found: set[str] = set()
        for part in chunks(wanted):
            found.update(model.objects.filter(**{f"{column}__in": part})
                         .values_list(column, flat=True))
        return found

    def audited(action: str, actor: str, wanted: list[str]) -> set[str]:
        found: set[str] = set()
        for part in chunks(wanted):
            found.update(AuditEntry.objects.filter(action=action, actor=actor,
                                                   object_repr__in=part)
                         .values_list("object_repr", flat=True))
        return found

    missing: dict[str, list[str]] = defaultdict(list)
    for client in run.clients:
        for model, column, action, made in ((Mailbox, "email", "mailbox.create", client.mailboxes),
                                            (Alias, "source", "alias.create", client.aliases)):
            rows, audit_rows = present(model, column, made), audited(action, client.username, made)
            missing[f"{action}: row"] += sorted(set(made) - rows)
            missing[f"{action}: audit row"] += sorted(set(made) - audit_rows)
        for action, count in client.edits.items():
            logged = AuditEntry.objects.filter(action=action, actor=client.username).count()
            if logged < count:
                missing[f"{action}: audit row"].append(
                    f"{client.username}: {count} edits seen, {logged} audited")
        if client.imported:
            domain = Domain.objects.get(name=IMPORT_DOMAIN)
            rows = Mailbox.objects.filter(domain=domain).count()
            event = AuditEntry.objects.filter(action="domain.import", actor=client.username,
                                              domain_ref=domain.pk).first()
            children = AuditEntry.objects.filter(parent=event.pk).count() if event else 0
            if rows != client.imported:
                missing["import: rows"].append(f"{client.imported} imported, {rows} present")
            if children != client.imported:
                missing["import: audit rows"].append(
                    f"{client.imported} imported, {children} audited")
    checked = {
        "mailbox.create": sum(len(c.mailboxes) for c in run.clients),
        "alias.create": sum(len(c.aliases) for c in run.clients),
        "mailbox.update": sum(c.edits["mailbox.update"] for c in run.clients),
        "alias.update": sum(c.edits["alias.update"] for c in run.clients),
        "import rows": sum(c.imported for c in run.clients),
    }
    return {"checked": checked, "lost": sum(len(v) for v in missing.values()),
            "missing": {k: v[:20] for k, v in missing.items() if v}}


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest rank."""
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]


def figures(run: Run, wall: float) -> dict[str, Any]:
    by_kind: dict[str, list[Sample]] = defaultdict(list)
    for client in run.clients:
        for sample in client.samples:
            by_kind[sample.kind].append(sample)
    kinds: dict[str, Any] = {}
    for kind, samples in sorted(by_kind.items()):
        ms = sorted(s.ms for s in samples)
        errors = [s for s in samples if s.error]
        kinds[kind] = {
            "requests": len(samples), "errors": len(errors),
            "p50": percentile(ms, 0.5), "p95": percentile(ms, 0.95),
            "p99": percentile(ms, 0.99), "max": ms[-1],
            "statuses": dict(Counter(str(s.status) for s in samples)),
            "error_examples": sorted(Counter(s.error for s in errors).items(),
                                     key=lambda kv: -kv[1])[:5],
        }
    timed = [s for c in run.clients for s in c.samples
             if s.kind not in ("sign-in form", "sign in")]
    all_ms = sorted(s.ms for s in timed)
    return {
        "wall_seconds": wall, "requests": len(timed),
        "requests_per_second": len(timed) / wall,
        # The sign-ins count too: an error there is an error of the run.
        "errors": sum(1 for c in run.clients for s in c.samples if s.error),
        "errors_signed_in": sum(1 for s in timed if s.error),
        "p50": percentile(all_ms, 0.5), "p95": percentile(all_ms, 0.95),
        "p99": percentile(all_ms, 0.99), "max": all_ms[-1],
        "kinds": kinds,
    }


def print_summary(args: argparse.Namespace, result: dict[str, Any], lost: dict[str, Any],
                  gunicorn: list[str], load_before: str, load_after: str) -> None:
    print(f"\nbackend: {args.backend}; load average before {load_before}, after {load_after}"
          f" ({os.cpu_count()} CPUs)")
    print(f"fixture: {args.domains} domains, {args.mailboxes} mailboxes; {args.clients} "
          f"clients for {args.seconds:.0f} s; gunicorn {' '.join(gunicorn)}; CSV import of "
          f"{args.import_rows} rows half-way")
    print(f"\n{'action':<24}{'requests':>9}{'errors':>7}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'p99 ms':>9}{'max ms':>9}")
    for kind, row in result["kinds"].items():
        print(f"{kind:<24}{row['requests']:>9}{row['errors']:>7}{row['p50']:>9.1f}"
              f"{row['p95']:>9.1f}{row['p99']:>9.1f}{row['max']:>9.1f}")
    print(f"{'all (signed in)':<24}{result['requests']:>9}{result['errors_signed_in']:>7}"
          f"{result['p50']:>9.1f}{result['p95']:>9.1f}{result['p99']:>9.1f}{result['max']:>9.1f}")
    cpu = result["cpu"]
    print(f"\nthroughput: {result['requests_per_second']:.1f} requests/s over "
          f"{result['wall_seconds']:.1f} s; CPU: gunicorn {cpu['server_seconds']:.0f} s, "
          f"the clients {cpu['clients_seconds']:.0f} s; one mailbox password hash "
          f"{cpu['one_mailbox_password_hash_ms']:.0f} ms of CPU")
    for kind, row in result["kinds"].items():
        for text, count in row["error_examples"]:
            print(f"  error x{count} in {kind}: {text}")
    checked = ", ".join(f"{k} {v}" for k, v in lost["checked"].items())
    print(f"writes seen to succeed: {checked}; lost: {lost['lost']}")
    for what, items in lost["missing"].items():
        print(f"  missing {what}: {', '.join(items[:5])}")


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "mariadb"), default="sqlite")
    parser.add_argument("--database", default="load_bench",
                        help="MariaDB database to create and drop (never a real one)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--domains", type=int, default=50)
    parser.add_argument("--mailboxes", type=int, default=20_000)
    parser.add_argument("--import-rows", type=int, default=5000)
    parser.add_argument("--label", default="", help="added to the results file's name")
    args = parser.parse_args(argv)
    fixture = lookups.Fixture(domains=args.domains, per_domain=args.mailboxes // args.domains)
    lookups.DB_NAME, lookups.RO_USER = args.database, f"{args.database}_ro"
    sqlite = args.backend == "sqlite"
    workdir = Path(tempfile.mkdtemp(prefix="mailadmin-load-"))
    gunicorn = unit_gunicorn_options()
    server: subprocess.Popen[bytes] | None = None
    started_at = datetime.datetime.now(datetime.UTC)
    try:
        (workdir / "data").mkdir(mode=0o700)
        if sqlite:
            database_url = f"sqlite:///{workdir / 'data' / 'mailadmin.sqlite3'}"
        else:
            lookups.recreate_database()
            database_url = ""
        # As the web unit's environment: no broker (tasks inline), no root helper.
        os.environ.update(MAILADMIN_CELERY_BROKER_URL="", MAILADMIN_HELPER_COMMAND="none",
                          MAILADMIN_DEBUG="0")
        lookups.setup_django(workdir / "data", workdir / "etc", database_url)
        from django.core.management import call_command
        from passlib.hash import bcrypt

        from accounts.services import create_admin
        from core.actor import Actor
        from domains.models import Domain
        from domains.passwords import hash_password

        call_command("migrate", verbosity=0)
        print(f"loading {fixture.domains} domains, {fixture.mailboxes} mailboxes ...",
              flush=True)
        lookups.load_fixture(
            fixture, "{BLF-CRYPT}" + bcrypt.using(ident="2y", rounds=4).hash("bench"))
        Domain.objects.create(name=IMPORT_DOMAIN)
        for n in range(args.clients):
            create_admin(actor=Actor.account("load-bench"), username=admin_name(n),
                         password=ADMIN_PASSWORD, superadmin=True)
        import_hash = hash_password(MAILBOX_PASSWORD)

        port = free_port()
        log = workdir / "gunicorn.log"
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [str(Path(sys.executable).parent / "gunicorn"), "mailadmin.wsgi",
                 "--bind", f"127.0.0.1:{port}", *gunicorn],
                cwd=PROJECT, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/login/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        run = Run(base, fixture, args.clients, args.seconds, args.import_rows, import_hash)
        load_before = lookups.load_average()
        print(f"{args.clients} clients for {args.seconds:.0f} s ...", flush=True)
        own_cpu = _cpu_seconds(resource.RUSAGE_SELF)
        wall = run.run()
        own_cpu = _cpu_seconds(resource.RUSAGE_SELF) - own_cpu
        load_after = lookups.load_average()
        server.terminate()
        server.wait(timeout=30)
        # gunicorn's master has reaped its workers: theirs is in its children's time.
        server_cpu = _cpu_seconds(resource.RUSAGE_CHILDREN)
        server_log = log.read_text(errors="replace")
        result = figures(run, wall)
        # CPU time, not wall time: the machine may be busy with other work.
        started = time.process_time()
        for _ in range(3):
            hash_password(MAILBOX_PASSWORD)
        result["cpu"] = {
            "clients_seconds": round(own_cpu, 1),
            "server_seconds": round(server_cpu, 1),
            "one_mailbox_password_hash_ms": round((time.process_time() - started) / 3 * 1000, 1),
        }
        lost = lost_writes(run)
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
        if not sqlite:
            lookups.drop_everything()
        shutil.rmtree(workdir, ignore_errors=True)

    print_summary(args, result, lost, gunicorn, load_before, load_after)
    # Worker time-outs and errors the clients may not see (a 500 they do see).
    troubles = [line for line in server_log.splitlines()
                if re.search(r"\b(ERROR|CRITICAL|WORKER TIMEOUT)\b|^Traceback", line)]
    if troubles:
        print(f"\ngunicorn's log has {len(troubles)} error lines, e.g.:\n"
              + "\n".join(troubles[:10]))
    label = f"-{args.label}" if args.label else ""
    out = RESULTS_DIR / f"load-{started_at:%Y-%m-%d}-{args.backend}{label}.json"
    lookups.write_json(out, {
        "started": started_at.isoformat(), "arguments": vars(args),
        "load_average_before": load_before, "load_average_after": load_after,
        "cpus": os.cpu_count(), "gunicorn": gunicorn, "mix": MIX, **result,
        "writes": lost, "server_log_errors": troubles[:50],
    })
    print(f"written to {out.relative_to(PROJECT)}")
    return 1 if result["errors"] or lost["lost"] or troubles else 0


if __name__ == "__main__":
    raise SystemExit(main())
