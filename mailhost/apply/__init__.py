"""Apply the rendered configuration to this host: stage, test, install, reload,
probe, roll back.

The agent (an unprivileged user) renders into a fresh staging directory
under MAILADMIN_STAGING_DIR, compares with the live files and runs the
checkers it may run (stage.py). A check (`check_only`) stops there. An apply
goes on through the root helper for each daemon whose files changed
(install.py): its `check` verb, then `install` (timestamped backup, atomic
swap), `reload` of the daemons the helper changed, the probes (probes.py),
and `restore` + `reload` again when a reload or a probe fails. The helper's
staging_root must be MAILADMIN_STAGING_DIR, its postfix_dir and dovecot_dir
MAILADMIN_POSTFIX_DIR and MAILADMIN_DOVECOT_DIR, its rspamd_dir
MAILADMIN_RSPAMD_DIR/local.d. Rspamd's files are applied while
MAILADMIN_RSPAMD_MILTER is set: `check rspamd` (rspamadm configtest), a
reload of Rspamd only when they changed, and then a probe of its milter proxy
(Postfix accepts mail unscanned when the milter does not answer, so nothing
else would notice an Rspamd the reload broke).

An apply is a job (core.jobs) routed to the host's own queue (`MailHost.queue`),
which only that host's agent consumes. Two applies of one host never
interleave: a request is refused while another is queued or running.

The rendered files hold the daemons' database password, so nothing here
stores or audits file content or diffs: names and line counts only, and
checker output with the password blanked out.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction

from core import audit, jobs
from core.actor import Actor, ActorKind
from mailhost import render
from mailhost.apply.install import Swap, helper_checks, install_and_probe
from mailhost.apply.probes import ProbeResult
from mailhost.apply.stage import (
    CHECK_DIR,
    CHECKER_TIMEOUT,
    REDACTED,
    CheckerResult,
    FileChange,
    _first_error,
    _run,
    compare,
    dovecot_check,
    live_path,
    postfix_check,
    redact,
    run_checkers,
    tls_problem,
)
from mailhost.models import THIS_HOST, ConfigApply, MailHost

__all__ = [
    "CHECKER_TIMEOUT", "CHECK_DIR", "REDACTED", "TASK", "CheckerResult", "FileChange",
    "ProbeResult", "_run", "agent", "compare", "dovecot_check", "history", "live_path",
    "postfix_check", "redact", "request_apply", "run_apply", "run_checkers",
]

log = logging.getLogger(__name__)

TASK = "mailhost.apply_config"


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
            jobs.enqueue_on_commit(TASK, apply.pk, queue=host.queue,
                                   refused=lambda: _not_sent(apply.pk, check_only))
    apply.refresh_from_db()
    return apply


def _not_sent(apply_id: int, check_only: bool) -> str:
    # Failed, so it blocks no later request and the history says what happened.
    jobs.fail(ConfigApply, apply_id, jobs.NOT_SENT, outcome=ConfigApply.Outcome.ERROR)
    return (f"the {'check' if check_only else 'apply'} was not started and nothing on the "
            "host changed; try again in a minute")


def _close_stale(host: MailHost) -> None:
    """A running apply whose worker is gone no longer blocks the next one."""
    for apply in ConfigApply.objects.filter(host=host, state=ConfigApply.State.RUNNING):
        if apply.is_stale():
            jobs.fail(ConfigApply, apply.pk, ConfigApply.lost_error, **ConfigApply.lost_changes)


def history(host: MailHost, limit: int = 20) -> list[ConfigApply]:
    """The host's latest applies and checks, newest first, for the Mail host page."""
    return list(ConfigApply.objects.filter(host=host).order_by("-pk")[:limit])


# ---------------------------------------------------------------- run


def run_apply(apply_id: int) -> ConfigApply | None:
    """The task body: claim apply `apply_id`, stage, compare, check, and for an
    apply install, reload, probe and roll back; record the outcome.

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
        # Rspamd's local.d only while Postfix passes mail through its milter
        # (render() leaves them out when MAILADMIN_RSPAMD_MILTER is off anyway).
        options = render.RenderOptions(host=host, database=database,
                                       with_rspamd=bool(settings.MAILADMIN_RSPAMD_MILTER))
        # Before rendering, which refuses a missing file with a shorter message.
        problem = tls_problem()
        if problem:
            raise ImproperlyConfigured(problem)
        files = render.render(options)
    except (ImproperlyConfigured, ValueError) as exc:
        return _end(apply, outcome=ConfigApply.Outcome.ERROR, error=f"cannot render: {exc}")
    staged = _staging_dir(apply_id)
    try:
        render.write_tree(files, staged)
        changes = compare(files, options)
        results = run_checkers(staged, options)
        daemons = sorted({c.daemon for c in changes})
        if not apply.check_only and daemons and all(r.ok for r in results):
            results += helper_checks(staged, daemons)
        output = redact("\n\n".join(str(r) for r in results), secrets)
        failed = [r for r in results if not r.ok]
        if failed:
            return _end(apply, outcome=ConfigApply.Outcome.CHECK_FAILED, changes=changes,
                        checker_output=output, error=redact(_first_error(failed[0]), secrets))
        if apply.check_only or not changes:
            outcome = (ConfigApply.Outcome.WOULD_CHANGE if changes and apply.check_only
                       else ConfigApply.Outcome.NOTHING_TO_CHANGE)
            return _end(apply, outcome=outcome, changes=changes, checker_output=output)
        swap = install_and_probe(staged, daemons, options)
        return _end_swap(apply, swap, changes=changes, checker_output=output, secrets=secrets)
    except SoftTimeLimitExceeded:
        return _end(apply, outcome=ConfigApply.Outcome.ERROR, error="cut off by its time limit")
    except OSError as exc:
        return _end(apply, outcome=ConfigApply.Outcome.ERROR,
                    error=f"cannot stage the configuration: {exc.strerror or exc}")
    finally:
        # The staged files hold the daemons' password: never left behind.
        shutil.rmtree(staged, ignore_errors=True)


def _end_swap(apply: ConfigApply, swap: Swap, *, changes: list[FileChange],
              checker_output: str, secrets: list[str]) -> ConfigApply:
    """Record what the helper did. A file the agent could not read and the
    helper found unchanged was not a change after all."""
    changes = [c for c in changes if c.status != "unreadable"
               or c.path in swap.changed_files or c.daemon not in swap.unchanged]
    record: dict[str, Any] = {"backups": swap.backups, "reloaded": swap.reloaded,
              "probes": [p.as_json() for p in swap.probes], "rolled_back": swap.rolled_back}
    output = checker_output + redact("".join(f"\n{line}" for line in swap.log), secrets)
    if swap.failed:
        outcome = (ConfigApply.Outcome.ROLLED_BACK if swap.rolled_back
                   else ConfigApply.Outcome.ERROR)
        return _end(apply, outcome=outcome, changes=changes, checker_output=output,
                    error=redact(swap.error, secrets), record=record)
    outcome = (ConfigApply.Outcome.APPLIED if swap.backups
               else ConfigApply.Outcome.NOTHING_TO_CHANGE)
    return _end(apply, outcome=outcome, changes=changes if swap.backups else [],
                checker_output=output, record=record)


def _staging_dir(apply_id: int) -> Path:
    root = Path(settings.MAILADMIN_STAGING_DIR)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    root.chmod(0o700)
    # mkdtemp makes it 0700 and new: nothing of an earlier apply is reused.
    return Path(tempfile.mkdtemp(prefix=f"apply-{apply_id}-", dir=root))


def _end(apply: ConfigApply, *, outcome: str, changes: list[FileChange] | None = None,
         checker_output: str = "", error: str = "",
         record: dict[str, Any] | None = None) -> ConfigApply:
    """Record how the apply ended, with one audit row for it.

    `record`: what the helper did (backups, reloaded, probes, rolled_back).
    """
    record = record or {}
    fields = {"outcome": outcome, "changes": [c.as_json() for c in changes or []],
              "checker_output": checker_output, **record}
    with transaction.atomic():
        if error:
            ended = jobs.fail(ConfigApply, apply.pk, error, **fields)
        else:
            ended = jobs.finish(ConfigApply, apply.pk, **fields)
        if ended:
            summary: dict[str, Any] = {
                key: record[key] for key in ("backups", "reloaded", "rolled_back")
                if key in record}
            failed_probes = [p["name"] for p in record.get("probes", []) if not p["ok"]]
            audit.record(
                actor=agent(apply.host), action="mailhost.apply_check" if apply.check_only
                else "mailhost.apply", obj=apply.host,
                after={"apply": apply.pk, "requested_by": apply.requested_by,
                       "outcome": outcome, "files": [c.path for c in changes or []],
                       **summary, **({"failed_probes": failed_probes} if failed_probes else {}),
                       **({"error": error[:500]} if error else {})})
    apply.refresh_from_db()
    return apply


def agent(host: MailHost) -> Actor:
    """Who the audit names for work the host's agent does (the requester is in the row)."""
    return Actor(ActorKind.SYSTEM, f"agent {host.queue}")
