"""The mail host's side of a key: made, re-read and removed through the root helper.

Runs in the host's agent (MailHost.queue). The helper does the work as
Rspamd's user and prints only the public key, so the private key never
crosses the broker, the database, a page, a log or an audit row.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError

from core.actor import Actor, ActorKind
from dkim import services
from dkim.models import DkimKey
from mailhost import privileged

log = logging.getLogger(__name__)
AGENT = Actor(ActorKind.SYSTEM, "agent")
NO_KEY_FILE = "none"


def make_key(key_id: int) -> DkimKey | None:
    """Give a pending key its public key; safe to run again at any point.

    The key file is looked for first: an agent that died after the helper
    made it, before the public key was stored, left a file, and reading it
    back is what makes a rerun never make a second key.
    """
    key = DkimKey.objects.select_related("domain").filter(pk=key_id).first()
    if key is None or key.external or key.state != DkimKey.State.PENDING or key.public_key:
        return key
    domain, selector = key.domain_name, key.selector
    try:
        printed = privileged.run_helper("dkim-pubkey", domain, selector).strip()
        if printed == NO_KEY_FILE:
            printed = privileged.run_helper("dkim-keygen", domain, selector, key.algorithm,
                                            str(key.bits)).strip()
        return services.store_public_key(actor=AGENT, key=key, public_key=printed)
    except (privileged.HelperError, ValidationError) as error:
        text = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        log.warning("DKIM key %s not made: %s", key.owner, text)
        services.note_problem(key=key, problem=f"The mail host did not make the key: {text}")
        return key


def remove_key_file(key_id: int) -> DkimKey | None:
    """A revoked key's file goes, then the key is gone; safe to run again."""
    key = DkimKey.objects.select_related("domain").filter(pk=key_id).first()
    if key is None or key.state != DkimKey.State.REVOKED:
        return key
    if key.domain_id is None and not services.signing_config_applied():
        # A deleted domain's key may still be listed in the applied
        # dkim_signing.conf: Rspamd would fail to sign with it. The rotation
        # tick asks again once the configuration without it is applied.
        services.note_problem(key=key, problem="Waiting for the signing configuration "
                              "without this key to be applied before removing its file.")
        return key
    if not key.external:
        try:
            privileged.run_helper("dkim-remove", key.domain_name, key.selector)
        except privileged.HelperError as error:
            log.warning("DKIM key file of %s not removed: %s", key.owner, error)
            services.note_problem(key=key, problem=f"The key file was not removed: {error}")
            return key
    return services.mark_gone(actor=AGENT, key=key)
