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
