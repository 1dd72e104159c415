"""What the benchmarks that run the panel in-process share: Django set up on a
scratch data directory, and the load average they report beside their figures."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def setup_django(data_dir: Path, **environ: str) -> None:
    """Django on `data_dir`, with `environ` (MAILADMIN_* settings) set first;
    MAILADMIN_DATA_GROUP defaults to postfix, so the daemons read the SQLite file."""
    os.environ["MAILADMIN_DATA_DIR"] = str(data_dir)
    os.environ.update(environ)
    os.environ.setdefault("MAILADMIN_DATA_GROUP", "postfix")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailadmin.settings")
    if str(PROJECT) not in sys.path:
        sys.path.insert(0, str(PROJECT))
    import django

    django.setup()


def run_threads(work: Callable[[], None], count: int) -> float:
    """`count` threads each running `work`; the wall time until all are done."""
    threads = [threading.Thread(target=work) for _ in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def run_attempts(attempt: Callable[[int], float], name: Callable[[int], str], clients: int,
                 seconds: float, limit: int) -> tuple[list[float], float, list[str]]:
    """`clients` threads running `attempt(n)` for n = 0, 1, ... until `limit`
    attempts or `seconds` s; the first error ends the run. The sorted times
    each attempt returned, the wall time, and the errors (as `name(n): error`)."""
    lock = threading.Lock()
    taken = [0]
    times: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                if taken[0] >= limit or errors:
                    return
                n = taken[0]
                taken[0] += 1
            try:
                took = attempt(n)
            except Exception as error:  # recorded, ends the run
                with lock:
                    errors.append(f"{name(n)}: {error!r}")
                return
            with lock:
                times.append(took)

    elapsed = run_threads(worker, clients)
    return sorted(times), elapsed, errors


def knot_conf(directory: Path, listen: str, zone_dir: Path, zones: Iterable[str]) -> str:
    """A knotd configuration serving `zones` from `zone_dir` (NAME.zone files),
    with per-type query statistics (`knotc stats`), zone files never rewritten."""
    zone_list = "".join(f"  - domain: {zone}\n" for zone in zones)
    return f"""\
server:
    rundir: "{directory}"
    listen: {listen}
database:
    storage: "{directory / 'db'}"
log:
  - target: stderr
    any: warning
control:
    listen: "{directory / 'knot.sock'}"
mod-stats:
  - id: default
    query-type: on
template:
  - id: default
    storage: "{zone_dir}"
    file: "%s.zone"
    journal-content: none
    zonefile-sync: -1
    semantic-checks: off
    global-module: mod-stats/default
zone:
{zone_list}"""
