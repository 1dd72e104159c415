"""Apply the rendered configuration to this host: stage, test, (install, reload,
probe, roll back).

This step does everything that needs no root: it renders into a fresh
staging directory, compares with the live files, runs the daemons' checkers
that an unprivileged user may run, and records the result. Installing,
reloading, probing and rolling back go through the root helper's verbs and
come next; until then every apply is a check and installs nothing.

An apply is a job (core.jobs) routed to the host's own queue (`MailHost.queue`),
which only that host's agent consumes. Two applies of one host never
interleave: a request is refused while another is queued or running.

The rendered files hold the daemons' database password, so nothing here
stores or audits file content or diffs: names and line counts only, and
checker output with the password blanked out.
"""

from __future__ import annotations

import difflib
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction

from core import audit, jobs
from core.actor import Actor, ActorKind
from mailhost import render
from mailhost.models import THIS_HOST, ConfigApply, MailHost

log = logging.getLogger(__name__)

TASK = "mailhost.apply_config"
# Each checker parses a handful of files; anything slower is stuck.
CHECKER_TIMEOUT = 30
# Beside the rendered tree in the staging directory, never installed.
CHECK_DIR = ".check"
REDACTED = "********"


@dataclass(frozen=True)
class FileChange:
    """What applying would do to one rendered file, without its content."""

    path: str  # relative, as render() names it: postfix/main.cf
    status: str  # "added", "changed" or "unreadable" (the live file cannot be read here)
    added: int = 0
    removed: int = 0

    def as_json(self) -> dict[str, object]:
        return {"path": self.path, "status": self.status,
                "added": self.added, "removed": self.removed}

    def __str__(self) -> str:
        if self.status == "changed":
            return f"{self.path} (+{self.added} -{self.removed})"
        return f"{self.path} ({self.status}, {self.added} lines)"


@dataclass(frozen=True)
class CheckerResult:
    name: str
    command: str
    returncode: int | None  # None: the checker could not be run
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def __str__(self) -> str:
        status = "not run" if self.returncode is None else f"exit {self.returncode}"
        text = f"$ {self.command}\n[{status}]"
        return f"{text}\n{self.output.rstrip()}" if self.output.strip() else text


# ---------------------------------------------------------------- request


def request_apply(*, actor: Actor, check_only: bool, enqueue: bool = True) -> ConfigApply:
    """Create an apply of this host's configuration and send it to the host's queue.

    ValidationError when an apply of this host is already queued or running.
    `enqueue=False` leaves the job for the caller to run in its own process
    (`manage.py apply_config` runs it inline with `run_apply`).
    """
    MailHost.current()
    with transaction.atomic():
        # The host row's lock orders concurrent requests: the second sees the first's row.
        host = MailHost.objects.select_for_update().get(pk=THIS_HOST)
        _close_stale(host)
        if ConfigApply.objects.filter(host=host, state__in=jobs.OPEN).exists():
            raise ValidationError(
                f"an apply for {host.mail_hostname} is already queued or running; "
                "wait for it to finish")
        apply = ConfigApply.objects.create(host=host, requested_by=str(actor)[:254],
                                           check_only=check_only)
        audit.record(actor=actor, action="mailhost.apply_request", obj=host,
                     after={"apply": apply.pk, "check_only": check_only})
        if enqueue:
            jobs.enqueue_on_commit(TASK, apply.pk, queue=host.queue)
    apply.refresh_from_db()
    return apply


def _close_stale(host: MailHost) -> None:
    """A running apply whose worker is gone no longer blocks the next one."""
    for apply in ConfigApply.objects.filter(host=host, state=ConfigApply.State.RUNNING):
        if apply.is_stale():
            jobs.fail(ConfigApply, apply.pk, "the agent stopped before the apply finished",
                      outcome=ConfigApply.Outcome.ERROR)


def history(host: MailHost, limit: int = 20) -> list[ConfigApply]:
    """The host's latest applies and checks, newest first, for the Mail host page."""
    return list(ConfigApply.objects.filter(host=host).order_by("-pk")[:limit])


# ---------------------------------------------------------------- run


def run_apply(apply_id: int) -> ConfigApply | None:
    """The task body: claim apply `apply_id`, stage, compare, check, record.

    None when there is nothing to do (done already, or another worker has
    it), so a redelivered task is harmless. Not reclaimed when stale: an
    install may have stopped halfway, which is for a person to look at.
    """
    if not jobs.claim(ConfigApply, apply_id):
        return None
    apply = ConfigApply.objects.select_related("host").get(pk=apply_id)
    host = apply.host
    try:
        database = render.daemon_database(host)
        secrets = [database.password] if database.password else []
        options = render.RenderOptions(host=host, database=database)
        files = render.render(options)
    except (ImproperlyConfigured, ValueError) as exc:
        return _end(apply, outcome=ConfigApply.Outcome.ERROR, error=f"cannot render: {exc}")
    staged = _staging_dir(apply_id)
    try:
        render.write_tree(files, staged)
        changes = compare(files, options)
        results = run_checkers(staged, options)
        output = redact("\n\n".join(str(r) for r in results), secrets)
        failed = [r for r in results if not r.ok]
        if failed:
            return _end(apply, outcome=ConfigApply.Outcome.CHECK_FAILED, changes=changes,
                        checker_output=output, error=redact(_first_error(failed[0]), secrets))
        # The install (helper verbs) comes in the next step: every apply is a check for now.
        outcome = (ConfigApply.Outcome.WOULD_CHANGE if changes
                   else ConfigApply.Outcome.NOTHING_TO_CHANGE)
        return _end(apply, outcome=outcome, changes=changes, checker_output=output)
    except SoftTimeLimitExceeded:
        return _end(apply, outcome=ConfigApply.Outcome.ERROR, error="cut off by its time limit")
    except OSError as exc:
        return _end(apply, outcome=ConfigApply.Outcome.ERROR,
                    error=f"cannot stage the configuration: {exc.strerror or exc}")
    finally:
        # The staged files hold the daemons' password: never left behind by a check.
        shutil.rmtree(staged, ignore_errors=True)


def _staging_dir(apply_id: int) -> Path:
    root = Path(settings.MAILADMIN_STAGING_DIR)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    root.chmod(0o700)
    # mkdtemp makes it 0700 and new: nothing of an earlier apply is reused.
    return Path(tempfile.mkdtemp(prefix=f"apply-{apply_id}-", dir=root))


def _end(apply: ConfigApply, *, outcome: str, changes: list[FileChange] | None = None,
         checker_output: str = "", error: str = "") -> ConfigApply:
    """Record how the apply ended, with one audit row for it."""
    fields = {"outcome": outcome, "changes": [c.as_json() for c in changes or []],
              "checker_output": checker_output}
    with transaction.atomic():
        if error:
            ended = jobs.fail(ConfigApply, apply.pk, error, **fields)
        else:
            ended = jobs.finish(ConfigApply, apply.pk, **fields)
        if ended:
            audit.record(
                actor=agent(apply.host), action="mailhost.apply_check" if apply.check_only
                else "mailhost.apply", obj=apply.host,
                after={"apply": apply.pk, "requested_by": apply.requested_by,
                       "outcome": outcome, "files": [c.path for c in changes or []],
                       **({"error": error[:500]} if error else {})})
    apply.refresh_from_db()
    return apply


def agent(host: MailHost) -> Actor:
    """Who the audit names for work the host's agent does (the requester is in the row)."""
    return Actor(ActorKind.SYSTEM, f"agent {host.queue}")


# ---------------------------------------------------------------- compare


def live_path(relative: str, options: render.RenderOptions) -> Path:
    """Where a rendered file (`postfix/...`, `dovecot/...`) is installed on this host."""
    daemon, _, rest = relative.partition("/")
    base = {"postfix": options.postfix_dir, "dovecot": options.dovecot_dir}[daemon]
    return Path(base) / rest


def compare(files: dict[str, str], options: render.RenderOptions) -> list[FileChange]:
    """The rendered files that differ from the live ones, with line counts only."""
    changes = []
    for relative, content in sorted(files.items()):
        new = content.splitlines()
        try:
            current = live_path(relative, options).read_text()
        except FileNotFoundError:
            changes.append(FileChange(relative, "added", added=len(new)))
            continue
        except (PermissionError, UnicodeDecodeError):
            # A 0640 root:dovecot file the agent may not read: the helper's
            # `check` verb compares those in the next step; counted as a change.
            changes.append(FileChange(relative, "unreadable", added=len(new)))
            continue
        if current == content:
            continue
        added = removed = 0
        for line in difflib.unified_diff(current.splitlines(), new, lineterm="", n=0):
            if line.startswith(("+++", "---")):
                continue
            added += line.startswith("+")
            removed += line.startswith("-")
        changes.append(FileChange(relative, "changed", added=added, removed=removed))
    return changes


# ---------------------------------------------------------------- checkers


def run_checkers(staged: Path, options: render.RenderOptions) -> list[CheckerResult]:
    """The daemons' own checkers on the staged files, as far as no root is needed."""
    return [postfix_check(staged), dovecot_check(staged, options), *helper_check(staged)]


def postfix_check(staged: Path) -> CheckerResult:
    """`postconf -c DIR -n` parses main.cf and master.cf (a syntax error is fatal).

    Its standard output is the whole configuration: only stderr (warnings,
    the fatal error) is kept. Map paths inside main.cf name the live tree,
    so a warning about a live map file not there yet is expected on a first
    apply. `postfix -c DIR check` needs root: see helper_check.
    """
    return _run("postconf", ["postconf", "-c", str(staged / "postfix"), "-n"])


def dovecot_check(staged: Path, options: render.RenderOptions) -> CheckerResult:
    """`doveconf -c FILE -n` on a wrapper that includes the staged fragment.

    The panel renders a conf.d fragment, not a whole dovecot.conf, and the
    live dovecot.conf includes the live conf.d: this checks the fragment's
    own settings (an unknown setting is exit 89), not how it combines with
    the host's other files. The combined check is the helper's (next step).
    """
    wrapper_dir = staged / CHECK_DIR
    wrapper_dir.mkdir(mode=0o700, exist_ok=True)
    wrapper = wrapper_dir / "dovecot.conf"
    wrapper.write_text(
        "# mailadmin apply_config: checks the staged fragment on its own.\n"
        f"base_dir = {wrapper_dir / 'run'}\n"
        "protocols = imap lmtp\n"
        "ssl = no\n"
        f"!include {staged / 'dovecot' / 'conf.d' / '90-mailadmin.conf'}\n")
    return _run("doveconf", ["doveconf", "-c", str(wrapper), "-n"])


def helper_check(staged: Path) -> list[CheckerResult]:
    """The checks that need root, through the helper's `check` verb: `postfix -c
    DIR check` and `doveconf -n` on the live tree with the staged files in it.

    The hook for the next step (mailhost.privileged.run_helper("check", ...));
    nothing runs here yet.
    """
    return []


def _run(name: str, args: list[str]) -> CheckerResult:
    command = " ".join(args)
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=CHECKER_TIMEOUT,
                              check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return CheckerResult(name, command, None, f"{args[0]} is not installed here")
    except subprocess.TimeoutExpired:
        return CheckerResult(name, command, None, f"no answer within {CHECKER_TIMEOUT} s")
    return CheckerResult(name, command, done.returncode, done.stderr)


def _first_error(result: CheckerResult) -> str:
    """The checker's own message in one line, for the job's error and the command."""
    lines = [line.strip() for line in result.output.splitlines() if line.strip()]
    fatal = [line for line in lines if "fatal" in line.lower() or "error" in line.lower()]
    message = (fatal or lines or ["failed"])[0]
    return f"{result.name} refused the staged configuration: {message}"


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text
