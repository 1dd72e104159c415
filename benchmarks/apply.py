"""Wall time of `apply_config` on a private Postfix and Dovecot, through the real root helper.

Run from the project root (as root: it starts Postfix and Dovecot on loopback
with the test harness, tests/integration/mailstack.py, runs the root helper
directly as root with a configuration naming the stack's directories, as the
integration tests do, and touches nothing under /etc):

    .venv/bin/python benchmarks/apply.py [--runs 10] [--label LABEL]

It makes an SQLite database in a temporary directory with one domain and one
mailbox, starts the stack, makes the panel render exactly the stack's files
(tests/integration/applying.py: the harness's own main.cf edits on top), and
times, `--runs` times each, `call_command("apply_config")` in this process:

- `check, nothing changed`: `apply_config --check` with nothing to change;
- `check, one change`: `apply_config --check` with MAILADMIN_MYNETWORKS changed
  (main.cf would change; nothing installed);
- `apply, nothing changed`: staging, the agent's checkers, no helper call;
- `apply, one change`: MAILADMIN_MYNETWORKS toggled between two values each
  run, so main.cf changes every time: staging, checkers, the helper's
  `check` and `install`, `postfix reload`, the three Postfix probes.

Each run is also split into its steps (render and compare, the agent's
checkers, the helper's checks, install + reload + probes). The figures leave
out starting the `manage.py` process (Python and Django), measured on its
own as `manage.py help apply_config`. The probes keep their production tries
(probes.ATTEMPTS, probes.DELAY). A run whose outcome is not the expected one
fails the benchmark.

The summary, with the load average before and after, is printed and written
to benchmarks/results/apply-<date>[-LABEL].json. Exit status 1 when a run
went wrong; there is no time goal.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import load_average, setup_django

PROJECT = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT / "benchmarks" / "results"
NETWORKS = ("127.0.0.254/32", "127.0.0.254/32 10.11.12.0/24")


class Steps:
    """Seconds spent in each step of the apply now running, by wrapping its functions."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def timed(self, real: Callable[..., Any], step: str | Callable[..., str]
              ) -> Callable[..., Any]:
        """`real`, adding its time to `step` (or to the step named from its arguments)."""
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                name = step if isinstance(step, str) else step(*args, **kwargs)
                self.seconds[name] = self.seconds.get(name, 0.0) + (
                    time.perf_counter() - started)
        return timed

    def wrap(self, module: Any, name: str, step: str | Callable[..., str]) -> None:
        setattr(module, name, self.timed(getattr(module, name), step))


@contextmanager
def prepared(stack: Any, scratch: Path) -> Iterator[Steps]:
    """What the `applying` fixture does for a test, for the whole run: the helper
    configured on the stack, the render equal to the stack's files."""
    from django.test import override_settings

    from mailhost import apply, render
    from mailhost.apply import install, stage
    from mailhost.models import MailHost
    from mailhost.seed import without_password
    from tests.integration.applying import (
        HELPER,
        _dovecot_conf_for_the_helper,
        harness_settings,
        stack_edits,
        stack_render,
    )

    conf = scratch / "helper.conf"
    with override_settings(
            MAILADMIN_DAEMON_DATABASE_URL=stack.daemon_url,
            MAILADMIN_STAGING_DIR=str(scratch / "staging"),
            MAILADMIN_IMAP_LISTEN=f"127.0.0.1:{stack.ports['imap']}",
            MAILADMIN_HELPER_COMMAND=["/usr/bin/python3", "-I", str(HELPER), "--conf",
                                      str(conf)]):
        MailHost.current()
        MailHost.objects.update(daemon_database=without_password(stack.daemon_url))
        host = MailHost.current()
        real = render.render
        rendered_main = real(render.RenderOptions(
            host=host, database=render.daemon_database(host)))["postfix/main.cf"]
        in_place, appended = stack_edits(stack, rendered_main)
        conf.write_text(
            f"staging_root = {scratch / 'staging'}\nbackup_root = {scratch / 'bk'}\n"
            f"postfix_dir = {stack.postfix_dir}\ndovecot_dir = {stack.etc / 'dovecot'}\n"
            f"rspamd_dir = {scratch / 'rspamd' / 'local.d'}\nkeep_backups = 3\n"
            # The harness's own main.cf settings, which the helper's allow-list
            # refuses otherwise: root allows them, as the `applying` fixture does.
            f"allow_postfix = {' '.join(harness_settings(in_place, appended))}\n")
        dovecot_conf = _dovecot_conf_for_the_helper(stack)
        steps = Steps()
        # The harness's edits (a `postconf -e` in a scratch directory) cost what
        # no production apply pays: timed apart, as "harness (not production)".
        as_the_stack = stack_render(steps.timed(real, "render"), in_place, appended)
        render.render = steps.timed(  # type: ignore[assignment]
            as_the_stack, "render + harness (not production)")
        saved = {name: getattr(apply, name) for name in (
            "compare", "run_checkers", "helper_checks", "install_and_probe")}
        saved_run, saved_helper, saved_probes = stage._run, install.run_helper, install.run_probes
        steps.wrap(apply, "compare", "compare")
        steps.wrap(apply, "run_checkers", "agent's checkers")
        steps.wrap(stage, "_run", lambda name, args: f"  agent's {name}")
        steps.wrap(install, "run_helper", lambda verb, *args: f"  helper {verb}")
        steps.wrap(install, "run_probes", "  probes")
        steps.wrap(apply, "helper_checks", "helper's checks")
        steps.wrap(apply, "install_and_probe", "install, reload, probes")
        try:
            yield steps
        finally:
            render.render = real  # type: ignore[assignment]
            for name, function in saved.items():
                setattr(apply, name, function)
            stage._run, install.run_helper, install.run_probes = (
                saved_run, saved_helper, saved_probes)
            dovecot_conf.unlink(missing_ok=True)


def apply_once(steps: Steps, *, check: bool) -> dict[str, Any]:
    from django.core.management import call_command

    from mailhost.models import ConfigApply

    steps.seconds = {}
    out = io.StringIO()
    started = time.perf_counter()
    call_command("apply_config", *(["--check"] if check else []), stdout=out)
    took = time.perf_counter() - started
    done = ConfigApply.objects.order_by("-pk").first()
    assert done is not None
    seconds = dict(steps.seconds)
    total = seconds.pop("render + harness (not production)", 0.0)
    seconds["harness (not production)"] = total - seconds.get("render", 0.0)
    return {"seconds": took, "outcome": done.outcome, "reloaded": done.reloaded,
            "probe_attempts": sum(p["attempts"] for p in done.probes), "steps": seconds}


def figures(runs: list[dict[str, Any]], expected: str) -> dict[str, Any]:
    times = [r["seconds"] for r in runs]
    names = sorted({name for r in runs for name in r["steps"]})
    wrong = [r["outcome"] for r in runs if r["outcome"] != expected]
    return {
        "runs": len(runs),
        "median_ms": round(statistics.median(times) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
        "min_ms": round(min(times) * 1000, 1),
        "steps_median_ms": {name: round(statistics.median(
            r["steps"].get(name, 0.0) for r in runs) * 1000, 1) for name in names},
        "probe_attempts": sorted({r["probe_attempts"] for r in runs}),
        "reloaded": sorted({", ".join(r["reloaded"]) or "-" for r in runs}),
        "outcome": expected,
        "wrong_outcomes": wrong,
    }


def measure(stack: Any, steps: Steps, runs: int) -> dict[str, dict[str, Any]]:
    from django.test import override_settings

    from tests.integration.applying import postconf

    results: dict[str, dict[str, Any]] = {}
    cases = [("check, nothing changed", True, NETWORKS[0], "nothing"),
             ("check, one change", True, NETWORKS[1], "would_change"),
             ("apply, nothing changed", False, NETWORKS[0], "nothing")]
    for label, check, networks, expected in cases:
        with override_settings(MAILADMIN_MYNETWORKS=networks):
            apply_once(steps, check=check)  # warm-up, not counted
            done = [apply_once(steps, check=check) for _ in range(runs)]
        results[label] = figures(done, expected)
        report(label, results[label])
    changed = []
    for n in range(runs + 1):
        networks = NETWORKS[(n + 1) % 2]
        with override_settings(MAILADMIN_MYNETWORKS=networks):
            run = apply_once(steps, check=False)
        if postconf(stack, "mynetworks") != networks:
            run["outcome"] = f"{run['outcome']}, but mynetworks is not {networks!r}"
        if n:  # the first run is the warm-up
            changed.append(run)
    results["apply, one change"] = figures(changed, "applied")
    report("apply, one change", results["apply, one change"])
    # Leave the stack as it started.
    with override_settings(MAILADMIN_MYNETWORKS=NETWORKS[0]):
        apply_once(steps, check=False)
    return results


def report(label: str, result: dict[str, Any]) -> None:
    steps = ", ".join(f"{k.strip()} {v}" for k, v in result["steps_median_ms"].items())
    print(f"{label}: median {result['median_ms']} ms, max {result['max_ms']} ms "
          f"({result['runs']} runs; {steps})", file=sys.stderr, flush=True)


def startup_ms(runs: int = 3) -> float:
    """Starting `manage.py` (Python, Django, the command's imports), not in the figures."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, str(PROJECT / "manage.py"), "help", "apply_config"],
                       check=True, capture_output=True, cwd=PROJECT, env=os.environ.copy())
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each case")
    parser.add_argument("--label", default="")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: it starts Postfix and Dovecot and runs the root helper",
              file=sys.stderr)
        return 2
    data_dir = Path(tempfile.mkdtemp(prefix="mailadmin-apply-"))
    data_dir.chmod(0o755)
    try:
        setup_django(data_dir)
        from django.core.management import call_command

        from core.actor import Actor
        from domains import services
        from mailhost.apply import probes
        from tests.integration.mailstack import mail_stack

        call_command("migrate", interactive=False, verbosity=0)
        services.create_domain(actor=Actor.cli(), name="apply.test")
        services.create_mailbox(actor=Actor.cli(), email="bob@apply.test",
                                password="benchmark horse battery")
        load_before = load_average()
        startup = startup_ms()
        print(f"manage.py start: {startup} ms", file=sys.stderr, flush=True)
        scratch = data_dir / "apply"
        scratch.mkdir()
        with mail_stack() as stack:
            from django.test import override_settings

            with override_settings(**stack.overrides), prepared(stack, scratch) as steps:
                results = measure(stack, steps, args.runs)
        load_after = load_average()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    ok = not any(r["wrong_outcomes"] for r in results.values())
    summary = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "runs": args.runs,
        "probe_attempts_max": probes.ATTEMPTS,
        "probe_delay_s": probes.DELAY,
        "manage_py_start_ms": startup,
        "cases": results,
        "ok": ok,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = f"apply-{datetime.date.today().isoformat()}{'-' + args.label if args.label else ''}"
    out = RESULTS_DIR / f"{name}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"written to {out.relative_to(PROJECT)}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
