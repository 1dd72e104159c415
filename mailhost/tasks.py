"""Celery tasks of mailhost: ids in, a service call, nothing else.

They run on the host's own queue (MailHost.queue), which only that host's
agent worker consumes; without a broker they run inline (settings).
"""

from __future__ import annotations

from celery import shared_task

from mailhost import apply, auth_cache
from mailhost.models import ConfigApply

# The soft limit lets an apply record that it was cut off before the hard one.
APPLY_SOFT_TIME_LIMIT = ConfigApply.time_limit - 30


@shared_task(name=apply.TASK, acks_late=True, ignore_result=True,
             soft_time_limit=APPLY_SOFT_TIME_LIMIT, time_limit=ConfigApply.time_limit)
def apply_config(apply_id: int) -> None:
    apply.run_apply(int(apply_id))


# A flush is a few doveadm runs; 100 addresses a run (auth_cache.BATCH).
@shared_task(name=auth_cache.TASK, acks_late=True, ignore_result=True,
             soft_time_limit=570, time_limit=600)
def flush_auth_cache(addresses: list[str]) -> None:
    auth_cache.flush([str(a) for a in addresses])
