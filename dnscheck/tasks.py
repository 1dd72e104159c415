"""Celery tasks of dnscheck: ids in, a service call, nothing else.

Without a broker they run inline (settings). Every task is safe to run
twice: a run is claimed atomically, the fan-out skips domains already
queued, the report remembers when it was last sent.
"""

from __future__ import annotations

from celery import Task, shared_task

from dnscheck import report, services
from dnscheck.models import CheckRun

# The soft limit lets a run record that it was cut off before the hard one.
RUN_SOFT_TIME_LIMIT = 120
RUN_TIME_LIMIT = CheckRun.time_limit


@shared_task(name="dnscheck.run_check", soft_time_limit=RUN_SOFT_TIME_LIMIT,
             time_limit=RUN_TIME_LIMIT, acks_late=True, ignore_result=True)
def run_check(run_id: int) -> None:
    services.execute_run(int(run_id))


@shared_task(name="dnscheck.check_all", soft_time_limit=600, time_limit=660,
             acks_late=True, ignore_result=True)
def check_all() -> int:
    return services.schedule_all()


# A copy of the report the mail server refused is tried again 5, 10, 20, 40 minutes
# later, then hourly until the next report replaces it (report.MIN_INTERVAL). Never
# longer than an hour: a task waiting for its countdown must not outlive the
# broker's visibility timeout (settings), or a second worker would get it too.
REPORT_RETRY_FIRST = 300
REPORT_RETRY_LONGEST = 3600
REPORT_RETRIES = 24


def report_retry_delay(retries: int) -> int | None:
    """Seconds until the next try after `retries` retries; None: no more."""
    if retries >= REPORT_RETRIES:
        return None
    return min(REPORT_RETRY_LONGEST, REPORT_RETRY_FIRST * 2 ** min(retries, 10))


@shared_task(bind=True, name="dnscheck.send_report", soft_time_limit=600, time_limit=660,
             acks_late=True, ignore_result=True, max_retries=REPORT_RETRIES)
def send_report(self: Task) -> int:
    sent = report.send_reports()
    delay = report_retry_delay(self.request.retries)
    # Inline (no broker) a retry would run at once, in a loop: the next call tries.
    if report.pending() and delay is not None and not self.request.is_eager:
        raise self.retry(countdown=delay)
    return sent


@shared_task(name="dnscheck.prune_history", soft_time_limit=600, time_limit=660,
             acks_late=True, ignore_result=True)
def prune_history() -> int:
    return services.prune_history()
