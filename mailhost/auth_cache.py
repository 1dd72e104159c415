"""Dovecot's auth cache, flushed for the mailboxes whose login the panel changed.

The rendered Dovecot configuration caches each login's passdb answer
(auth_cache_size). Until an entry is flushed, a changed password is not seen:
the old one keeps working from the cache (mail-stack.md, verified), and so
does a mailbox or domain the panel disabled or deleted. So every such change
asks the mail host's agent, once its transaction commits, to run the root
helper's `flush-auth-cache` for the addresses (`doveadm auth cache flush`).

A flush that fails never undoes or fails the change that asked for it: the
change is in the database, Dovecot reads it at the next lookup that misses the
cache, and the failure is logged with what it means. A host without a helper
(MAILADMIN_HELPER_COMMAND `none`) skips the flush with one log line.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import transaction

from core.jobs import enqueue_on_commit
from mailhost import privileged
from mailhost.models import MailHost

logger = logging.getLogger(__name__)

TASK = "mailhost.flush_auth_cache"
# Addresses per helper call: the helper takes at most this many (one doveadm
# run each), so disabling a domain of 10,000 mailboxes is 100 calls, and never
# a flush of the whole cache, which would make every client on the host run
# bcrypt again at once.
BATCH = 100


def flush_on_commit(addresses: Iterable[str]) -> None:
    """Send the flush to this host's agent once the current transaction commits."""
    wanted = sorted(set(addresses))
    if wanted:
        transaction.on_commit(functools.partial(send, wanted))


def send(addresses: list[str]) -> None:
    """Hand the flush to this host's agent, on its queue. The host row is read
    here, after the commit, not inside the change's transaction."""
    enqueue_on_commit(TASK, addresses, queue=MailHost.current().queue)


def flush(addresses: Sequence[str]) -> int:
    """Flush the addresses' cache entries through the helper; returns how many
    addresses were flushed. Never raises for a failed flush: logs it."""
    wanted = sorted(set(addresses))
    if not wanted:
        return 0
    if not privileged.has_helper():
        logger.info("Dovecot's auth cache not flushed for %s: this host has no root helper "
                    "(MAILADMIN_HELPER_COMMAND is none)", _named(wanted))
        return 0
    flushed = 0
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start:start + BATCH]
        try:
            output = privileged.run_helper("flush-auth-cache", *batch)
        except privileged.HelperError as error:
            logger.error(
                "Dovecot's auth cache was NOT flushed for %s: %s. Until it is (doveadm auth "
                "cache flush ADDRESS, as root) or its entries expire (auth_cache_ttl %s), "
                "an old password keeps working and a disabled or deleted mailbox can "
                "still sign in.", _named(batch), error, settings.MAILADMIN_DOVECOT_AUTH_CACHE_TTL)
            continue
        flushed += len(batch)
        logger.info("Dovecot's auth cache flushed for %s: %s", _named(batch),
                    output.strip() or "done")
    return flushed


def _named(addresses: Sequence[str]) -> str:
    if len(addresses) <= 3:
        return ", ".join(addresses)
    return f"{', '.join(addresses[:3])} and {len(addresses) - 3} more"
