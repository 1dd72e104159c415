"""The root part of an apply, through the helper's verbs (mailhost.privileged):
check, install, reload, probe, and restore when something fails.

Per daemon whose files changed: `check DAEMON STAGED` (postfix check and
doveconf as root, on the live tree with the staged files in it); once every
check passed, `install DAEMON STAGED` (the helper keeps a timestamped backup
and swaps atomically; it prints `backup ID` or `unchanged`); then `reload`
of each daemon the helper actually changed, never a restart; then the probes.
When a reload or a probe fails, every install of this apply is put back with
`restore DAEMON ID` and those daemons are reloaded again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from mailhost import render
from mailhost.apply.probes import ProbeResult, run_probes
from mailhost.apply.stage import CheckerResult
from mailhost.privileged import HelperError, run_helper

log = logging.getLogger(__name__)


@dataclass
class Swap:
    """What the helper did: the record of one apply's root part."""

    backups: dict[str, str] = field(default_factory=dict)  # daemon -> backup id
    unchanged: list[str] = field(default_factory=list)  # the helper found nothing to change
    changed_files: list[str] = field(default_factory=list)  # postfix/main.cf, ...
    reloaded: list[str] = field(default_factory=list)
    probes: list[ProbeResult] = field(default_factory=list)
    rolled_back: bool = False
    error: str = ""  # why it was rolled back (or could not be)
    log: list[str] = field(default_factory=list)  # one line per step, for the record

    @property
    def failed(self) -> bool:
        return bool(self.error)


def helper_checks(staged: Path, daemons: list[str]) -> list[CheckerResult]:
    """The helper's `check` verb per daemon: the checkers that need root."""
    results = []
    for daemon in daemons:
        command = f"mailadmin-helper check {daemon} {staged}"
        try:
            output = run_helper("check", daemon, str(staged))
        except HelperError as refused:
            results.append(CheckerResult(f"{daemon} check", command, 1, str(refused)))
        else:
            results.append(CheckerResult(f"{daemon} check", command, 0, output))
    return results


def install_and_probe(staged: Path, daemons: list[str],
                      options: render.RenderOptions) -> Swap:
    """Install the staged files of `daemons`, reload what changed, probe, roll back."""
    swap = Swap()
    try:
        for daemon in daemons:
            _install(swap, staged, daemon)
        for daemon in swap.backups:
            swap.log.append(f"reload {daemon}: " + _first(run_helper("reload", daemon)))
            swap.reloaded.append(daemon)
    except HelperError as failed:
        swap.error = f"{failed}"
        _roll_back(swap)
        return swap
    swap.probes = run_probes(swap.reloaded, options)
    swap.log.extend(str(p) for p in swap.probes)
    bad = [p for p in swap.probes if not p.ok]
    if bad:
        swap.error = "; ".join(f"probe {p.name} {p.target} failed: {p.detail}" for p in bad)
        _roll_back(swap)
    return swap


def _install(swap: Swap, staged: Path, daemon: str) -> None:
    lines = run_helper("install", daemon, str(staged)).splitlines()
    if lines[:1] == ["unchanged"]:
        swap.unchanged.append(daemon)
        swap.log.append(f"install {daemon}: unchanged")
        return
    head = lines[0].split() if lines else []
    if len(head) != 2 or head[0] != "backup":
        raise HelperError(f"install {daemon}: unexpected answer {lines[:1]!r} from the helper")
    swap.backups[daemon] = head[1]
    swap.changed_files.extend(f"{daemon}/{line.removeprefix('changed ')}"
                              for line in lines[1:] if line.startswith("changed "))
    swap.log.append(f"install {daemon}: backup {head[1]}")


def _roll_back(swap: Swap) -> None:
    """Put back every backup this apply made and reload those daemons again."""
    if not swap.backups:
        return
    problems = []
    for daemon, backup_id in swap.backups.items():
        try:
            run_helper("restore", daemon, backup_id)
            swap.log.append(f"restore {daemon} {backup_id}: done")
            swap.log.append(f"reload {daemon}: " + _first(run_helper("reload", daemon)))
        except HelperError as failed:
            problems.append(f"{daemon}: {failed}")
            swap.log.append(f"roll back {daemon}: {failed}")
    swap.rolled_back = not problems
    if problems:
        log.error("rolling back an apply failed: %s", "; ".join(problems))
        swap.error += "; ROLLING BACK FAILED: " + "; ".join(problems)
    else:
        swap.error += "; rolled back to " + ", ".join(
            f"{daemon} {backup}" for daemon, backup in swap.backups.items())


def _first(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[0] if lines else "done"
