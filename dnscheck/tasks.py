"""Celery tasks of dnscheck: ids in, a service call, nothing else.

Without a broker they run inline (settings). Every task is safe to run
twice: a run is claimed atomically, the fan-out skips domains already
queued, the report remembers when it was last sent.
"""

from __future__ import annotations

from celery import shared_task

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


@shared_task(name="dnscheck.send_report", soft_time_limit=600, time_limit=660,
             acks_late=True, ignore_result=True)
def send_report() -> int:
    return report.send_reports()


@shared_task(name="dnscheck.prune_history", soft_time_limit=600, time_limit=660,
             acks_late=True, ignore_result=True)
def prune_history() -> int:
    return services.prune_history()
