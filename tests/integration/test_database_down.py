"""The database down: the panel answers 503 with a message, the command line one
line, a worker retries; once it is back everything works, the session too.

The real part, stopped for real: a private MariaDB (its own datadir and
loopback port; the system one serves others) killed and started again under a
panel served by gunicorn, and a SQLite database whose directory goes away.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from django.conf import settings

from tests.integration.test_broker_down import PrivateRedis

pytestmark = pytest.mark.daemons

BIN = Path(sys.executable).parent
PASSWORD = "a long enough admin password"
MESSAGE = "The database is not answering; try again in a minute."


def _needs(*programs: str) -> None:
    missing = [p for p in programs if not shutil.which(p)]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"needs {', '.join(missing)}")
        pytest.skip(f"needs {', '.join(missing)}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen in {timeout} s")


class PrivateMariaDB:
    """mariadbd on its own datadir and port, no grant tables (root without password)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir()
        as_root = os.geteuid() == 0
        self.user = ["--user=mysql"] if as_root else []
        if as_root:
            shutil.chown(self.dir, "mysql", "mysql")
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.dir / 'data'}",
                *self.user,
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={self.dir / 'data'}",
                *self.user,
                f"--socket={self.dir / 'mysqld.sock'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
                "--skip-name-resolve",
                f"--pid-file={self.dir / 'mysqld.pid'}",
                f"--log-error={self.dir / 'error.log'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, "the private MariaDB's start")

    def answers(self) -> bool:
        import MySQLdb

        try:
            MySQLdb.connect(host="127.0.0.1", port=self.port, user="root").close()
        except MySQLdb.OperationalError:
            return False
        return True

    def query(self, sql: str, name: str = "") -> list[tuple[object, ...]]:
        import MySQLdb

        connection = MySQLdb.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            autocommit=True,
            **({"database": name} if name else {}),
        )
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            return list(cursor.fetchall())
        finally:
            connection.close()

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown; nothing is said to the clients."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Panel:
    """manage.py and gunicorn (one worker, so one kept database connection) on `env`."""

    def __init__(self, tmp: Path, database_url: str) -> None:
        data = tmp / "data"
        data.mkdir()
        self.tmp = tmp
        self.env = {
            **os.environ,
            "MAILADMIN_DATA_DIR": str(data),
            "MAILADMIN_DATABASE_URL": database_url,
            "MAILADMIN_HELPER_COMMAND": "none",
            "MAILADMIN_DATA_GROUP": "",
        }
        self.env.pop("MAILADMIN_CELERY_BROKER_URL", None)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def manage(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "python"), "manage.py", *args],
            input=stdin,
            text=True,
            capture_output=True,
            env=self.env,
            cwd=settings.BASE_DIR,
            timeout=300,
        )

    def set_up(self) -> None:
        for args, stdin in (
            (("migrate", "--no-input"), ""),
            (("admin", "add", "root", "--superadmin", "--password-stdin"), PASSWORD + "\n"),
            (("domain", "add", "kept.example"), ""),
        ):
            done = self.manage(*args, stdin=stdin)
            assert done.returncode == 0, done.stderr

    def serve(self) -> None:
        with open(self.tmp / "gunicorn.log", "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(BIN / "gunicorn"),
                    "mailadmin.wsgi",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    "1",
                    "--timeout",
                    "60",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=settings.BASE_DIR,
            )
        wait_until(lambda: self.get("/login/")[0] == 200, "gunicorn's start")

    def log(self) -> str:
        return (self.tmp / "gunicorn.log").read_text(errors="replace")

    def get(self, path: str) -> tuple[int, str]:
        return self._open(urllib.request.Request(f"http://127.0.0.1:{self.port}{path}"))

    def post(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        token = next(c.value for c in self.cookies if c.name == "csrftoken")
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token}).encode()
        return self._open(urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data))

    def _open(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except (ConnectionError, urllib.error.URLError):
            return 0, ""

    def sign_in(self) -> None:
        self.get("/login/")
        status, page = self.post("/login/", {"username": "root", "password": PASSWORD})
        assert status == 200 and "Dashboard" in page, page[:2000]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def assert_database_down_page(status: int, page: str) -> None:
    assert status == 503, page[:2000]
    assert MESSAGE in page
    assert "Traceback" not in page and "Server Error" not in page


@pytest.fixture(scope="module")
def mariadb() -> Iterator[PrivateMariaDB]:
    _needs("mariadbd", "mariadb-install-db")
    # Not under pytest's base directory: that is private to root, and mariadbd runs as mysql.
    top = Path(tempfile.mkdtemp(prefix="mailadmin-private-mariadb-"))
    top.chmod(0o755)
    server = PrivateMariaDB(top / "db")
    try:
        server.start()
        server.query("CREATE DATABASE down_panel CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        yield server
    finally:
        server.stop()
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def mariadb_panel(
    mariadb: PrivateMariaDB, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Panel]:
    panel = Panel(tmp_path_factory.mktemp("panel"), mariadb.url("down_panel"))
    panel.set_up()
    panel.serve()
    panel.sign_in()
    try:
        yield panel
    finally:
        panel.stop()


def test_a_restarted_mariadb_is_reconnected_to_without_an_error(
    mariadb: PrivateMariaDB, mariadb_panel: Panel
) -> None:
    """The worker keeps its connection (CONN_MAX_AGE); the health check before the
    next request finds it dead and connects again: no request sees the restart."""
    assert mariadb_panel.get("/")[0] == 200
    mariadb.kill()
    mariadb.start()
    status, page = mariadb_panel.get("/")
    assert status == 200 and "Dashboard" in page, page[:2000]


def test_mariadb_down_gives_a_503_page_and_the_session_survives(
    mariadb: PrivateMariaDB, mariadb_panel: Panel
) -> None:
    assert mariadb_panel.get("/domains/")[0] == 200
    mariadb.kill()
    try:
        # Signed in: the session itself is read from the database (a middleware).
        assert_database_down_page(*mariadb_panel.get("/domains/"))
        assert_database_down_page(*mariadb_panel.get("/"))
        # A write: refused whole.
        assert_database_down_page(*mariadb_panel.post("/domains/new/", {"name": "lost.example"}))
        # The command line: one line, status 1, for the app's commands and Django's own.
        for args in (("domain", "list"), ("showmigrations", "core")):
            done = mariadb_panel.manage(*args)
            assert done.returncode == 1, done.stderr
            assert done.stderr.count("\n") == 1, done.stderr
            assert "the database is not answering" in done.stderr
            assert "Traceback" not in done.stderr
    finally:
        mariadb.start()
    # Back: the same session, no new sign-in; nothing was half-written.
    status, page = mariadb_panel.get("/domains/")
    assert status == 200 and "kept.example" in page, page[:2000]
    assert "lost.example" not in page
    assert "Traceback" not in mariadb_panel.log()


def test_a_task_on_a_worker_waits_out_a_mariadb_outage(
    mariadb: PrivateMariaDB, mariadb_panel: Panel, tmp_path: Path
) -> None:
    """The worker does not crash or loop: the task is retried with a pause until the
    database answers, then does its work once."""
    _needs("redis-server")
    redis = PrivateRedis(tmp_path)
    redis.start()
    broker = redis.url
    made = mariadb_panel.manage(
        "shell",
        "-c",
        (
            "from domains.models import Domain; from dnscheck.models import CheckRun; "
            "print(CheckRun.objects.create(domain=Domain.objects.get(name='kept.example'),"
            " requested_by='test').pk)"
        ),
    )
    assert made.returncode == 0, made.stderr
    run_id = int(made.stdout.split()[-1])
    env = {
        **mariadb_panel.env,
        "MAILADMIN_CELERY_BROKER_URL": broker,
        "MAILADMIN_DNS_RESOLVERS": "127.0.0.1@9",
        "MAILADMIN_DNS_TIMEOUT": "0.2",
        "MAILADMIN_DNS_TRIES": "1",
        "MAILADMIN_DNSBL_ZONES": "zen.dnsbl.test",
        "MAILADMIN_DNSBL_DOMAIN_ZONES": "dbl.dnsbl.test",
    }
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                "mailadmin",
                "worker",
                "--concurrency=1",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=settings.BASE_DIR,
        )

    def worker_log() -> str:
        return log_path.read_text(errors="replace")

    def state() -> str:
        return str(
            mariadb.query(f"SELECT state FROM dnscheck_runs WHERE id = {run_id}", "down_panel")[0][
                0
            ]
        )

    try:
        wait_until(lambda: "ready." in worker_log(), "the worker's start")
        mariadb.kill()
        from celery import Celery

        sender = Celery("sender", broker=broker)
        try:
            sender.send_task("dnscheck.run_check", args=[run_id])
            wait_until(lambda: "retry: Retry in" in worker_log(), "the task's retry")
            assert worker.poll() is None, worker_log()
        finally:
            mariadb.start()
            sender.close()
        wait_until(lambda: state() == "done", "the run after the database came back", 180)
        log = worker_log()
        assert "OperationalError" in log and "succeeded" in log
        assert worker.poll() is None
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        redis.stop()


def test_sqlite_file_out_of_reach_gives_a_503_page(tmp_path: Path) -> None:
    """On the embedded default, "unreachable" is the file's directory gone (a
    moved or unmounted disk): the same page, and all is well once it is back."""
    directory = tmp_path / "db"
    directory.mkdir()
    panel = Panel(tmp_path, f"sqlite:///{directory / 'mailadmin.sqlite3'}")
    panel.set_up()
    panel.serve()
    try:
        panel.sign_in()
        directory.rename(tmp_path / "db-away")
        try:
            # (Not manage.py here: a process starting makes the data directories anew.)
            assert_database_down_page(*panel.get("/domains/"))
            assert_database_down_page(*panel.get("/"))
        finally:
            (tmp_path / "db-away").rename(directory)
        status, page = panel.get("/domains/")
        assert status == 200 and "kept.example" in page, page[:2000]
        assert "Traceback" not in panel.log()
    finally:
        panel.stop()


def test_the_page_is_rendered_without_the_database(
    mariadb: PrivateMariaDB, mariadb_panel: Panel
) -> None:
    """An anonymous page too (no session to read): still the message, not the login form."""
    anonymous = Panel.__new__(Panel)
    anonymous.__dict__.update(mariadb_panel.__dict__, cookies=CookieJar())
    anonymous.opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(anonymous.cookies)
    )
    mariadb.kill()
    try:
        status, page = anonymous.get("/domains/")
        # The sign-in redirect needs no database; the sign-in page's POST does.
        assert status == 200 and re.search(r'name="username"', page)
        anonymous.get("/login/")
        assert_database_down_page(
            *anonymous.post("/login/", {"username": "root", "password": PASSWORD})
        )
    finally:
        mariadb.start()
