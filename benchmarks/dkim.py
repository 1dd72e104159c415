"""DKIM at hosting scale: 1,000 domains through the key lifecycle, one apply of their
signing configuration, and Rspamd's signing throughput with it.

Run from the project root, as root (it starts a private Postfix, Dovecot and
Rspamd on loopback with the test harness, tests/integration/mailstack.py,
Knot DNS on a free loopback port, and runs the root helper directly as root
with a configuration naming the stack's directories; nothing under /etc is
touched):

    .venv/bin/python benchmarks/dkim.py [--domains 1000] [--helper-keys 20]
                                        [--messages 2000] [--clients 4] [--label LABEL]

1. Lifecycle. It makes an SQLite database in a temporary directory with N
   domains (domains.services.create_domain), gives each a pending RSA-2048
   key, writes one zone per domain with the key's record (TTL 2 s) and
   serves them with Knot, then times the publish check (dkim.publish's
   check_keys over all keys, asking Knot as the domains' authoritative
   server and as the resolver): the first pass (every key seen), the pass
   after the TTL (every key published), and the rotation tick that
   activates them (dkim.rotation.advance). Knot's own statistics count the
   queries. Keys: the first --helper-keys domains get theirs the production
   way (services.generate -> the agent's task, inline -> the root helper's
   dkim-keygen, i.e. `rspamadm dkim_keygen` as _rspamd); the rest are made in
   this process with `cryptography` (two processes, a key each, distinct),
   written to the same key directory as _rspamd's files and stored with
   services.store_public_key. Both are timed.
2. Apply. The wall time of rendering the configuration with N domains'
   signing keys, the size of dkim_signing.conf, `rspamadm configtest` on a
   copy of the stack's Rspamd configuration with it (and with a one-domain
   file, for comparison), and of one whole apply (Rspamd's files only, as
   tests/integration/test_dkim_signing.py: the helper's `check rspamd`, the
   install, SIGHUP, the milter probe), then of the next apply with nothing
   to change.
3. Throughput. Messages per second that the stack's Rspamd scans and signs,
   POSTed to its normal worker (/checkv2, with `User:` so it signs as for
   an authenticated sender), by --clients threads, with a one-domain
   dkim_signing.conf and then with the N-domain one (senders from one
   domain, and round robin over all N). A message counts as signed when the
   answer carries a DKIM-Signature; a sample of each case is verified by
   dkimpy against Knot (tests/integration/dkim_verify.py).

It prints a summary with the load average before and after, and writes it to
benchmarks/results/dkim-<date>[-LABEL].json. Exit status 1 when a step went
wrong (a key not published, an apply not applied, a message unsigned, a
signature that does not verify); there is no time goal.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import datetime
import http.client
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import knot_conf, load_average, run_threads, setup_django

PROJECT = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT / "benchmarks" / "results"
VERIFY = PROJECT / "tests" / "integration" / "dkim_verify.py"
VENV_PYTHON = PROJECT / ".venv" / "bin" / "python"
NS_ZONE = "dkimbench.test"
NS_HOST = f"ns.{NS_ZONE}"
TTL = 2  # the DKIM records' TTL: "seen for its TTL" is a short wait
SOA_SERIAL = 2026120201
RSPAMD_USER = "_rspamd"
VERIFY_SAMPLE = 20


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def domain_name(i: int) -> str:
    return f"d{i:04d}.dkimbench.test"


def txt(value: str) -> str:
    chunks = [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
    return "TXT " + " ".join(f'"{chunk}"' for chunk in chunks)


@contextmanager
def timer(into: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        into[name] = round(time.perf_counter() - started, 3)


# ---------------------------------------------------------------- knot


class Knot:
    """knotd serving one zone per domain and the name server's zone, with query statistics."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.dir, self.port = workdir, port
        self.conf = workdir / "knot.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        self.zones: list[str] = []

    def write(self, zones: dict[str, list[str]]) -> None:
        zone_dir = self.dir / "zones"
        zone_dir.mkdir(parents=True)
        (self.dir / "db").mkdir()
        self.zones = list(zones)
        for zone, lines in zones.items():
            body = "\n".join([f"@ SOA {NS_HOST}. hostmaster.{NS_ZONE}. {SOA_SERIAL} 3600 600 "
                              "86400 60", f"@ NS {NS_HOST}.", *lines])
            (zone_dir / f"{zone}.zone").write_text(f"$ORIGIN {zone}.\n$TTL 3600\n{body}\n")
        self.conf.write_text(knot_conf(self.dir, f"127.0.0.1@{self.port}", zone_dir, zones))

    def knotc(self, *args: str) -> str:
        return subprocess.run(["knotc", "-c", str(self.conf), *args], check=True,
                              capture_output=True, text=True, timeout=60).stdout

    def start(self) -> None:
        log_file = (self.dir / "knotd.log").open("wb")
        self.proc = subprocess.Popen(["knotd", "-c", str(self.conf)], stdout=log_file,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"knotd exited: {(self.dir / 'knotd.log').read_text()}")
            if (self.dir / "knot.sock").exists():
                status = subprocess.run(["knotc", "-c", str(self.conf), "zone-status"],
                                        capture_output=True, text=True).stdout
                if status.count(f"serial: {SOA_SERIAL}") == len(self.zones):
                    return
            time.sleep(0.2)
        raise RuntimeError("knotd did not load its zones within 120 s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def queries(self) -> Counter[str]:
        """Queries received so far, by type (TXT, NS, A, ...)."""
        types: Counter[str] = Counter()
        for line in self.knotc("stats", "mod-stats").splitlines():
            key, _, value = line.partition(" = ")
            if key.startswith("mod-stats.query-type["):
                types[key[key.index("[") + 1:-1]] = int(value)
        return types


@contextmanager
def counted(knot: Knot, into: dict[str, Any]) -> Iterator[None]:
    before = knot.queries()
    started = time.perf_counter()
    try:
        yield
    finally:
        into["seconds"] = round(time.perf_counter() - started, 3)
        after = knot.queries()
        into["knot_queries"] = sum((after - before).values())
        into["knot_queries_by_type"] = dict(after - before)


# ---------------------------------------------------------------- keys


def _make_rsa_key(_: int) -> tuple[bytes, str]:
    """(PEM private key, base64 DER public key) of a fresh RSA-2048 key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(der).decode()


def make_keys(domains: list[Any], helper_keys: int, key_dir: Path) -> dict[str, Any]:
    """A pending RSA-2048 key with its public key for every domain; timed both ways."""
    from core.actor import Actor
    from dkim import selectors, services

    actor = Actor.cli()
    out: dict[str, Any] = {}
    helper_domains, fast_domains = domains[:helper_keys], domains[helper_keys:]
    # The production way: the agent's task runs inline (no broker), through the helper.
    started = time.perf_counter()
    for domain in helper_domains:
        services.generate(actor=actor, domain=domain)
    took = time.perf_counter() - started
    out["helper"] = {"keys": len(helper_domains), "seconds": round(took, 3),
                     "per_key_ms": round(took / max(1, len(helper_domains)) * 1000, 1),
                     "extrapolated_1000_keys_s": round(took / max(1, len(helper_domains))
                                                       * 1000, 1)}
    log(f"helper keygen: {len(helper_domains)} keys in {took:.1f} s")
    # The fast way: the rows through the service (no task), the key files made here.
    real_request = services.request_generation
    services.request_generation = lambda key: None  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        rows = [services.generate(actor=actor, domain=domain) for domain in fast_domains]
        rows_took = time.perf_counter() - started
    finally:
        services.request_generation = real_request  # type: ignore[assignment]
    started = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        made = list(pool.map(_make_rsa_key, range(len(rows)), chunksize=16))
    keys_took = time.perf_counter() - started
    user = pwd.getpwnam(RSPAMD_USER)
    started = time.perf_counter()
    for row, (pem, public) in zip(rows, made, strict=True):
        path = Path(selectors.key_file(str(key_dir), row.domain.name, row.selector))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        os.chown(path, user.pw_uid, user.pw_gid)
        services.store_public_key(actor=actor, key=row, public_key=public)
    store_took = time.perf_counter() - started
    out["fast"] = {"keys": len(rows), "rows_seconds": round(rows_took, 3),
                   "keygen_seconds": round(keys_took, 3),
                   "keygen_processes": os.cpu_count() or 2,
                   "files_and_store_seconds": round(store_took, 3)}
    log(f"fast keygen: {len(rows)} rows {rows_took:.1f} s, keys {keys_took:.1f} s, "
        f"files + store_public_key {store_took:.1f} s")
    return out


# ---------------------------------------------------------------- lifecycle


def lifecycle(knot: Knot) -> tuple[dict[str, Any], bool]:
    from django.test import override_settings

    from core.actor import Actor
    from core.resolver import Resolver
    from dkim import publish, rotation, selectors
    from dkim.models import DkimKey

    actor = Actor.cli()
    out: dict[str, Any] = {}
    ok = True
    for name in ("first pass (seen)", "after the TTL (published)"):
        if name.startswith("after"):
            time.sleep(TTL + 0.5)
        resolver = Resolver.from_settings()
        figures: dict[str, Any] = {}
        with counted(knot, figures):
            results = publish.check_keys(selectors.keys_to_check(), actor=actor,
                                         resolver=resolver)
        figures["keys_checked"] = len(results)
        figures["resolver_queries"] = resolver.queries
        figures["observations"] = dict(Counter(seen.status for _, seen in results))
        figures["states_after"] = dict(Counter(DkimKey.objects.values_list("state", flat=True)))
        figures["per_key_ms"] = round(figures["seconds"] / max(1, len(results)) * 1000, 2)
        out[name] = figures
        log(f"publish check, {name}: {figures['seconds']} s, {len(results)} keys, "
            f"{figures['knot_queries']} queries, {figures['states_after']}")
    published = out["after the TTL (published)"]["states_after"]
    ok &= published == {"published": DkimKey.objects.count()}
    # The tick that activates every published key. Its signing apply is asked
    # once per activation when a milter is set: off here, the apply is timed on its own.
    figures = {}
    with override_settings(MAILADMIN_RSPAMD_MILTER=""), counted(knot, figures):
        steps = rotation.advance(actor=actor)
    figures["steps"] = len(steps)
    figures["states_after"] = dict(Counter(DkimKey.objects.values_list("state", flat=True)))
    out["rotation tick (activate)"] = figures
    log(f"rotation tick: {figures['seconds']} s, {figures['states_after']}")
    ok &= figures["states_after"] == {"active": DkimKey.objects.count()}
    return out, ok


# ---------------------------------------------------------------- rendering, configtest


def signing_conf(domains: dict[str, Any]) -> str:
    from django.template import Context, Engine

    from mailhost.render import TEMPLATE_DIR

    engine = Engine(dirs=[str(TEMPLATE_DIR)], autoescape=False)
    return engine.get_template("rspamd/dkim_signing.conf").render(
        Context({"dkim_domains": domains}, autoescape=False))


def configtest_seconds(stack: Any, text: str, scratch: Path, runs: int = 3) -> list[float]:
    from tests.integration.mailstack import rspamd_vars, run

    tree = scratch / "configtest"
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(stack.rspamd_conf, tree, symlinks=True)
    (tree / "local.d" / "dkim_signing.conf").write_text(text)
    times = []
    variables = [v.replace(str(stack.rspamd_conf), str(tree)) for v in rspamd_vars(stack)]
    for _ in range(runs):
        started = time.perf_counter()
        result = run(["rspamadm", *variables, "configtest", "-c", str(tree / "rspamd.conf")])
        times.append(round(time.perf_counter() - started, 3))
        if "syntax OK" not in result.stdout:
            raise RuntimeError(f"rspamadm configtest: {result.stdout} {result.stderr}")
    return times


def render_figures(stack: Any, scratch: Path) -> dict[str, Any]:
    from django.conf import settings

    from dkim import selectors
    from mailhost import render
    from mailhost.models import MailHost

    host = MailHost.current()
    options = render.RenderOptions(host=host, database=render.daemon_database(host),
                                   with_rspamd=True)
    times, files = [], {}
    for _ in range(5):
        started = time.perf_counter()
        files = render.render(options)
        times.append(time.perf_counter() - started)
    keys_times = []
    for _ in range(5):
        started = time.perf_counter()
        signing = selectors.signing_keys(settings.MAILADMIN_DKIM_KEY_DIR)
        keys_times.append(time.perf_counter() - started)
    conf = files["rspamd/local.d/dkim_signing.conf"]
    first = next(iter(signing))
    single = signing_conf({first: signing[first]})
    out = {
        "domains_in_file": len(signing),
        "dkim_signing_conf_bytes": len(conf.encode()),
        "dkim_signing_conf_lines": conf.count("\n"),
        "render_all_files_ms_median": round(statistics.median(times) * 1000, 1),
        "signing_keys_query_ms_median": round(statistics.median(keys_times) * 1000, 1),
        "configtest_seconds": configtest_seconds(stack, conf, scratch),
        "configtest_one_domain_seconds": configtest_seconds(stack, single, scratch),
    }
    log(f"render: {out['render_all_files_ms_median']} ms, dkim_signing.conf "
        f"{out['dkim_signing_conf_bytes']} bytes; configtest {out['configtest_seconds']} s "
        f"(one domain: {out['configtest_one_domain_seconds']} s)")
    return out


# ---------------------------------------------------------------- apply


class Steps:
    """Seconds spent in the apply's steps, by wrapping its functions."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.saved: list[tuple[Any, str, Any]] = []

    def wrap(self, module: Any, name: str, step: str | Callable[..., str]) -> None:
        real = getattr(module, name)
        self.saved.append((module, name, real))

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                label = step if isinstance(step, str) else step(*args, **kwargs)
                self.seconds[label] = self.seconds.get(label, 0.0) + (
                    time.perf_counter() - started)
        setattr(module, name, timed)

    def restore(self) -> None:
        for module, name, real in reversed(self.saved):
            setattr(module, name, real)


def apply_once(steps: Steps) -> dict[str, Any]:
    from core.actor import Actor
    from mailhost import apply

    steps.seconds = {}
    started = time.perf_counter()
    done = apply.run_apply(apply.request_apply(actor=Actor.cli(), check_only=False,
                                               enqueue=False).pk)
    took = time.perf_counter() - started
    assert done is not None
    return {"seconds": round(took, 3), "outcome": done.outcome, "reloaded": done.reloaded,
            "error": done.error,
            "steps_ms": {k.strip(): round(v * 1000, 1) for k, v in steps.seconds.items()}}


@contextmanager
def rspamd_only_apply() -> Iterator[Steps]:
    """Applies of Rspamd's files only, as test_dkim_signing.py's `signing` fixture:
    Postfix's and Dovecot's apply is benchmarked in apply.py, and this stack's
    main.cf carries the harness's own edits."""
    from mailhost import apply, render
    from mailhost.apply import install

    real_render, real_checkers = render.render, apply.run_checkers
    render.render = lambda options: {  # type: ignore[assignment]
        name: text for name, text in real_render(options).items()
        if name.startswith("rspamd/")}
    apply.run_checkers = lambda staged, options: []  # type: ignore[assignment]
    steps = Steps()
    steps.wrap(render, "render", "render (Rspamd's files)")
    steps.wrap(apply, "compare", "compare")
    steps.wrap(install, "run_helper", lambda verb, *args: f"  helper {verb} {args[0]}")
    steps.wrap(install, "run_probes", "  probes")
    steps.wrap(apply, "helper_checks", "helper's checks")
    steps.wrap(apply, "install_and_probe", "install, reload, probes")
    try:
        yield steps
    finally:
        steps.restore()
        render.render, apply.run_checkers = real_render, real_checkers  # type: ignore[assignment]


# ---------------------------------------------------------------- throughput


def message(sender: str, to: str, tag: str) -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: benchmark {tag}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@{sender.split('@')[1]}>\r\n"
            f"Date: {datetime.datetime.now(datetime.UTC):%a, %d %b %Y %H:%M:%S +0000}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + f"marker {tag}\r\n" + "A line of a short benchmark message.\r\n" * 20).encode()


def signature_of(answer: dict[str, Any]) -> str:
    """The DKIM-Signature Rspamd asks the milter to add, or ""."""
    legacy = answer.get("dkim-signature")
    if isinstance(legacy, str):
        return legacy
    if isinstance(legacy, list) and legacy:
        return str(legacy[0])
    added = (answer.get("milter") or {}).get("add_headers") or {}
    value = added.get("DKIM-Signature")
    if isinstance(value, dict):
        return str(value.get("value", ""))
    if isinstance(value, list) and value:
        first = value[0]
        return str(first.get("value", "")) if isinstance(first, dict) else str(first)
    return str(value or "")


def throughput(port: int, senders: list[str], count: int, clients: int,
               keep: int) -> dict[str, Any]:
    """`count` messages POSTed to /checkv2 by `clients` threads, round robin over `senders`."""
    lock = threading.Lock()
    next_index = [0]
    latencies: list[float] = []
    signed = [0]
    errors: list[str] = []
    samples: list[bytes] = []

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= count:
                break
            sender = senders[index % len(senders)]
            body = message(sender, "someone@outside.test", str(index))
            headers = {"User": sender, "From": sender, "Rcpt": "someone@outside.test",
                       "IP": "192.0.2.77", "Helo": "client.dkimbench.test",
                       "Queue-Id": f"Q{index}"}
            started = time.perf_counter()
            try:
                connection.request("POST", "/checkv2", body=body, headers=headers)
                response = connection.getresponse()
                answer = json.loads(response.read())
            except (OSError, http.client.HTTPException, ValueError) as error:
                with lock:
                    errors.append(f"{type(error).__name__}: {error}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            took = time.perf_counter() - started
            signature = signature_of(answer)
            with lock:
                latencies.append(took)
                if signature:
                    signed[0] += 1
                    if len(samples) < keep:
                        samples.append(f"DKIM-Signature: {signature}\r\n".encode() + body)
        connection.close()

    took = run_threads(worker, clients)
    latencies.sort()
    return {
        "messages": count, "clients": clients, "sender_domains": len(
            {s.split("@")[1] for s in senders}),
        "seconds": round(took, 3), "messages_per_second": round(len(latencies) / took, 1),
        "signed": signed[0], "errors": len(errors), "first_error": errors[0] if errors else "",
        "latency_ms": {"p50": round(latencies[len(latencies) // 2] * 1000, 1),
                       "p95": round(latencies[int(len(latencies) * 0.95)] * 1000, 1),
                       "max": round(latencies[-1] * 1000, 1)} if latencies else {},
        "_samples": samples,
    }


def verify(samples: list[bytes], knot_port: int, scratch: Path) -> dict[str, Any]:
    """dkimpy's verdict on signed messages, asking Knot for the keys."""
    directory = scratch / f"verify-{uuid.uuid4().hex[:6]}"
    directory.mkdir()
    files = []
    for n, sample in enumerate(samples):
        path = directory / f"{n}.eml"
        path.write_bytes(sample)
        files.append(str(path))
    done = subprocess.run([str(VENV_PYTHON), "-I", str(VERIFY)], capture_output=True,
                          text=True, timeout=120,
                          input=json.dumps({"port": knot_port, "files": files}))
    verdicts = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    good = sum(1 for v in verdicts if v["signatures"] and all(s["ok"] for s in v["signatures"]))
    reasons = [s["why"] for v in verdicts for s in v["signatures"] if not s["ok"]]
    return {"checked": len(files), "verified": good,
            "first_failure": reasons[0] if reasons else done.stderr[-300:] if good < len(
                files) else ""}


def rspamd_workers(stack: Any) -> int:
    """Rspamd's normal worker processes (the stock count on this machine)."""
    pid = (stack.root / "rspamd-state" / "run" / "rspamd.pid").read_text().strip()
    children = subprocess.run(["ps", "--ppid", pid, "-o", "args="], capture_output=True,
                              text=True).stdout
    return sum(1 for line in children.splitlines() if "normal" in line)


def wait_until_signing(port: int, sender: str, timeout: float = 60) -> None:
    """After a restart or SIGHUP, until the workers answer with a signature."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = throughput(port, [sender], 4, 1, 0)
        if result["signed"] == 4:
            return
        time.sleep(0.5)
    raise RuntimeError(f"Rspamd does not sign for {sender}")


def restart_rspamd(stack: Any) -> None:
    from tests.integration.mailstack import start_rspamd, stop_rspamd

    pid_file = stack.root / "rspamd-state" / "run" / "rspamd.pid"
    pid = int(pid_file.read_text().strip())
    stop_rspamd(stack)
    for _ in range(200):
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.1)
    start_rspamd(stack)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--helper-keys", type=int, default=20,
                        help="keys made through the root helper (rspamadm); the rest in-process")
    parser.add_argument("--messages", type=int, default=2000, help="messages per throughput case")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--label", default="")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        log("run as root: it starts Postfix, Dovecot, Rspamd and Knot and runs the root helper")
        return 2
    data_dir = Path(tempfile.mkdtemp(prefix="mailadmin-dkimbench-"))
    data_dir.chmod(0o755)
    knot: Knot | None = None
    summary: dict[str, Any] = {"domains": args.domains}
    ok = True
    try:
        setup_django(data_dir)
        from django.core.management import call_command
        from django.test import override_settings

        from core.actor import Actor
        from dkim import selectors
        from dkim.models import DkimKey
        from domains import services as domain_services
        from domains.models import Domain
        from mailhost.apply import probes
        from tests.integration.dnsserver import free_dns_port
        from tests.integration.mailstack import HELPER, mail_stack

        call_command("migrate", interactive=False, verbosity=0)
        load_before = load_average()
        timings: dict[str, float] = {}
        with timer(timings, "create_domains_seconds"):
            for i in range(1, args.domains + 1):
                domain_services.create_domain(actor=Actor.cli(), name=domain_name(i))
        log(f"{args.domains} domains in {timings['create_domains_seconds']} s")
        knot_port = free_dns_port()
        with mail_stack(rspamd=True, rspamd_nameserver=f"127.0.0.1:{knot_port}") as stack:
            key_dir = stack.root / "dkim-keys"
            conf = data_dir / "helper.conf"
            conf.write_text(
                f"staging_root = {data_dir / 'staging'}\nbackup_root = {data_dir / 'bk'}\n"
                f"postfix_dir = {stack.postfix_dir}\ndovecot_dir = {stack.etc / 'dovecot'}\n"
                f"rspamd_dir = {stack.rspamd_conf / 'local.d'}\n"
                f"rspamd_pid_file = {stack.root / 'rspamd-state' / 'run' / 'rspamd.pid'}\n"
                f"dkim_key_dir = {key_dir}\n")
            overrides = {
                **stack.overrides,
                "MAILADMIN_HELPER_COMMAND": ["/usr/bin/python3", "-I", str(HELPER),
                                             "--conf", str(conf)],
                "MAILADMIN_STAGING_DIR": str(data_dir / "staging"),
                "MAILADMIN_RSPAMD_DIR": str(stack.rspamd_conf),
                "MAILADMIN_DKIM_KEY_DIR": str(key_dir),
                "MAILADMIN_DAEMON_DATABASE_URL": stack.daemon_url,
                "MAILADMIN_DNS_RESOLVERS": [f"127.0.0.1@{knot_port}"],
                "MAILADMIN_DNS_AUTHORITATIVE_PORT": knot_port,
                "MAILADMIN_DNS_TIMEOUT": 2.0,
                "MAILADMIN_DNS_TRIES": 2,
            }
            with override_settings(**overrides):
                domains = list(Domain.objects.order_by("name"))
                summary["keys"] = make_keys(domains, args.helper_keys, key_dir)
                summary["timings"] = timings
                # 1. The zones with every pending key's record, served by Knot.
                zones: dict[str, list[str]] = {NS_ZONE: ["ns A 127.0.0.1"]}
                for key in DkimKey.objects.select_related("domain"):
                    zones[key.domain.name] = [
                        f"{key.selector}._domainkey {TTL} "
                        + txt(f"v=DKIM1; k=rsa; p={key.public_key}")]
                knot = Knot(data_dir / "knot", knot_port)
                knot.write(zones)
                with timer(timings, "knot_load_seconds"):
                    knot.start()
                log(f"knot serves {len(zones)} zones on 127.0.0.1@{knot_port}")
                summary["lifecycle"], lifecycle_ok = lifecycle(knot)
                ok &= lifecycle_ok
                # 2. The render, configtest, and one apply.
                summary["render"] = render_figures(stack, data_dir)
                signing = selectors.signing_keys(str(key_dir))
                first = next(iter(signing))
                port = stack.ports["rspamd_normal"]
                # 3a. One domain's signing config, written straight into the stack.
                (stack.rspamd_conf / "local.d" / "dkim_signing.conf").write_text(
                    signing_conf({first: signing[first]}))
                restart_rspamd(stack)
                wait_until_signing(port, f"bob@{first}")
                summary["rspamd_normal_workers"] = rspamd_workers(stack)
                cases: dict[str, Any] = {}
                samples: dict[str, list[bytes]] = {}
                senders_all = [f"user{i}@{name}" for i, name in enumerate(signing)]

                def measure(label: str, senders: list[str]) -> None:
                    throughput(port, senders, min(100, args.messages), args.clients, 0)
                    dns: dict[str, Any] = {}
                    with counted(knot, dns):
                        result = throughput(port, senders, args.messages, args.clients,
                                            VERIFY_SAMPLE)
                    # Rspamd's check_pubkey asks for each key's record (and caches it).
                    result["knot_queries"] = dns["knot_queries"]
                    result["knot_queries_by_type"] = dns["knot_queries_by_type"]
                    samples[label] = result.pop("_samples")
                    cases[label] = result
                    log(f"{label}: {result['messages_per_second']} msg/s, "
                        f"{result['signed']}/{result['messages']} signed, "
                        f"p50 {result['latency_ms'].get('p50')} ms")

                measure("one-domain config, one sender domain", [f"bob@{first}"])
                # 2b. The apply with N domains (the installed file has one: a change).
                with rspamd_only_apply() as steps:
                    applied = apply_once(steps)
                    log(f"apply ({len(signing)} domains): {applied['seconds']} s, "
                        f"{applied['outcome']} {applied['error']}")
                    wait_until_signing(port, senders_all[-1])
                    unchanged = apply_once(steps)
                    log(f"apply, nothing changed: {unchanged['seconds']} s, "
                        f"{unchanged['outcome']}")
                summary["apply"] = {"with_all_domains": applied, "nothing_changed": unchanged,
                                    "probe_attempts_max": probes.ATTEMPTS,
                                    "probe_delay_s": probes.DELAY}
                ok &= applied["outcome"] == "applied"
                ok &= unchanged["outcome"] == "nothing"
                measure(f"{len(signing)}-domain config, one sender domain", [f"bob@{first}"])
                measure(f"{len(signing)}-domain config, senders round robin over "
                        f"{len(signing)} domains", senders_all)
                for label, result in cases.items():
                    result["dkimpy"] = verify(samples[label], knot_port, data_dir)
                    ok &= result["signed"] == result["messages"] and not result["errors"]
                    ok &= result["dkimpy"]["verified"] == result["dkimpy"]["checked"]
                summary["throughput"] = cases
        summary["load_average_before"] = load_before
        summary["load_average_after"] = load_average()
    finally:
        if knot is not None:
            knot.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    summary = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
               "cpus": os.cpu_count(), **summary, "ok": bool(ok)}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = f"dkim-{datetime.date.today().isoformat()}{'-' + args.label if args.label else ''}"
    out = RESULTS_DIR / f"{name}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    log(f"written to {out.relative_to(PROJECT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
