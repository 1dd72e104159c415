"""Writes to the mail host's row: validated, in one transaction, audited."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core import audit
from core.actor import Actor
from mailhost.models import THIS_HOST, MailHost

EDITABLE = ("mail_hostname", "mx_hosts", "public_ipv4", "public_ipv6",
            "vmail_dir", "vmail_uid", "vmail_gid", "daemon_database")


def update_mail_host(*, actor: Actor, **fields: Any) -> MailHost:
    """Change the named fields of this host; ValidationError names a field it refuses.

    Takes effect for the daemons at the next `render_config` (and for the DNS
    checks at their next run). The audit row holds the changed fields only;
    the row itself can hold no password (validators.validate_daemon_database).
    """
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise TypeError(f"not a mail host field: {', '.join(sorted(unknown))}")
    MailHost.current()
    with transaction.atomic():
        host = MailHost.objects.select_for_update().get(pk=THIS_HOST)
        before = audit.snapshot(host, EDITABLE)
        for name, value in fields.items():
            setattr(host, name, value)
        host.full_clean()
        after = audit.snapshot(host, EDITABLE)
        changed = [name for name in EDITABLE if before[name] != after[name]]
        if changed:
            host.save()
            audit.record(actor=actor, action="mailhost.update", obj=host,
                         before={k: before[k] for k in changed},
                         after={k: after[k] for k in changed})
    return host
