"""Which life of a Celery worker claimed a job (core.jobs), importable before Django's
apps load: the worker records it as it starts (mailadmin.celery, worker_init).

Celery only warns when two live workers share a node name (two workers on one
host started without --hostname, containers with one host name), so a node
name alone cannot tell a dead worker's jobs from a live namesake's.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

# This worker's life, set in its main process before the pool forks (begin).
_life = ""


def begin() -> None:
    global _life
    _life = of(pid=os.getpid())


def current() -> str:
    return _life


def of(*, pid: int) -> str:
    """`machine/boot/pid` of a worker's main process."""
    return f"{socket.gethostname()}/{_boot_id()}/{pid}"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def ended(life: str) -> bool:
    """Whether the worker life `life` recorded on a job is over, as far as this
    machine can tell; a life elsewhere is left alone (the stale sweep ends it)."""
    machine, _, rest = life.partition("/")
    boot, _, pid_text = rest.rpartition("/")
    if machine != socket.gethostname() or not pid_text.isdigit():
        return False
    if boot != _boot_id():
        return True
    pid = int(pid_text)
    # The same pid as this worker: an earlier life in a fresh pid namespace (a container).
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
