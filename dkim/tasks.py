"""Celery tasks of dkim: ids in, a call, nothing else; each safe to run twice.

Making and removing key files is host work: those tasks go to the host's
queue (MailHost.queue), which only its agent consumes. The publish check is
DNS work and runs on any worker.
"""

from __future__ import annotations

from celery import shared_task

from core.actor import BEAT
from dkim import keygen, publish, rotation, selectors, services

# The helper waits for rspamadm up to 60 s and the panel for the helper 120 s;
# a 4096-bit RSA key takes a few seconds.
HOST_SOFT_TIME_LIMIT, HOST_TIME_LIMIT = 270, 300
CHECK_SOFT_TIME_LIMIT, CHECK_TIME_LIMIT = 600, 660


@shared_task(name=services.GENERATE_TASK, acks_late=True, ignore_result=True,
             soft_time_limit=HOST_SOFT_TIME_LIMIT, time_limit=HOST_TIME_LIMIT)
def generate_key(key_id: int) -> None:
    keygen.make_key(int(key_id))


@shared_task(name=services.REMOVE_FILE_TASK, acks_late=True, ignore_result=True,
             soft_time_limit=HOST_SOFT_TIME_LIMIT, time_limit=HOST_TIME_LIMIT)
def remove_key_file(key_id: int) -> None:
    keygen.remove_key_file(int(key_id))


@shared_task(name=services.CHECK_DOMAIN_TASK, acks_late=True, ignore_result=True,
             soft_time_limit=CHECK_SOFT_TIME_LIMIT, time_limit=CHECK_TIME_LIMIT)
def check_domain(domain_id: int) -> int:
    """On demand (the DKIM page's button): one domain's pending and revoked keys."""
    return len(publish.check_keys(selectors.keys_to_check([int(domain_id)]), actor=BEAT))


@shared_task(name="dkim.rotate_all", acks_late=True, ignore_result=True,
             soft_time_limit=CHECK_SOFT_TIME_LIMIT, time_limit=CHECK_TIME_LIMIT)
def rotate_all() -> int:
    """Beat: keys the host has not made yet asked for again, then every domain one
    safe step further (dkim/rotation.py), the publish check included.

    The tick is the only scheduled publish check: a separate one on the same
    schedule asked every authoritative server the same questions twice.
    """
    for key in selectors.keys_awaiting_generation():
        services.request_generation(key)
    return len(rotation.advance(actor=BEAT))
