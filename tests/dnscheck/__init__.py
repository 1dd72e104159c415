"""Helpers for the dnscheck tests: stored runs made directly, without DNS."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from dnscheck.models import CheckResult, CheckRun, Verdict
from domains.models import Domain

OK, UNKNOWN, WARNING, ERROR = Verdict.OK, Verdict.UNKNOWN, Verdict.WARNING, Verdict.ERROR


def make_run(domain: Domain, results: list[tuple] | None = None, *,
             state: str = CheckRun.State.DONE, finished: datetime | None = None,
             minutes_ago: float = 0, error: str = "") -> CheckRun:
    """A run of `domain` as a worker would leave it.

    `results` are (check_name, subject, verdict[, reason[, record[, observed, expected]]]).
    """
    done = state in (CheckRun.State.DONE, CheckRun.State.FAILED)
    when = finished or timezone.now() - timedelta(minutes=minutes_ago)
    rows = results or []
    worst = max((r[2] for r in rows), default=UNKNOWN) if state == CheckRun.State.DONE else None
    run = CheckRun.objects.create(domain=domain, state=state, requested_by="t",
                                  started=when if state != CheckRun.State.QUEUED else None,
                                  finished=when if done else None, worst=worst, error=error)
    CheckResult.objects.bulk_create(
        CheckResult(run=run, check_name=r[0], subject=r[1], verdict=r[2],
                    reason=r[3] if len(r) > 3 else f"{r[0]} says {Verdict(r[2]).label}",
                    record=r[4] if len(r) > 4 else "",
                    observed=r[5] if len(r) > 5 else "",
                    expected=r[6] if len(r) > 6 else "",
                    checked_at=when)
        for r in rows)
    return run
