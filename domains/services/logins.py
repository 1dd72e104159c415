"""A mailbox's sign-in to the panel: the password check, and the rehash of an
old scheme it allows."""

from __future__ import annotations

import functools
import logging
import secrets

from django.core.exceptions import ValidationError
from django.db import transaction

from core import audit
from core.actor import Actor
from domains import passwords
from domains.models import Mailbox
from domains.services._common import _lock
from domains.validators import normalize_address

logger = logging.getLogger(__name__)


def verify_mailbox_login(*, email: str, password: str) -> Mailbox | None:
    """The mailbox if the password is right and it may sign in; rehashes old schemes."""
    try:
        address = normalize_address(email)
    except ValidationError:
        return None
    mailbox = (Mailbox.objects.select_related("domain")
               .filter(email=address, active=True, domain__active=True).first())
    if mailbox is None:
        # Spend the time of a real check, so timing does not tell which addresses exist.
        passwords.verify_password(password, _dummy_hash())
        return None
    too_costly = passwords.cost_problem(mailbox.password)
    if too_costly:
        # Planted (or adopted) before the bounds: never run it, it would hold
        # this worker for as long as its cost says. The caller counts and
        # logs the failure like any other.
        logger.warning("Refused to verify the stored hash of %s: %s", address, too_costly)
        passwords.verify_password(password, _dummy_hash())
        return None
    if not passwords.verify_password(password, mailbox.password):
        return None
    if passwords.needs_rehash(mailbox.password) and passwords.can_hash(password):
        with transaction.atomic():
            locked = _lock(Mailbox, mailbox.pk, str(mailbox))
            old_scheme, _ = passwords.split_hash(locked.password)
            locked.password = passwords.hash_password(password)
            locked.save(update_fields=["password"])
            audit.record(actor=Actor.mailbox(address), action="mailbox.rehash", obj=locked,
                         domain=mailbox.domain,
                         before={"scheme": old_scheme},
                         after={"scheme": passwords.default_scheme()})
        mailbox.password = locked.password
    return mailbox


@functools.cache
def _dummy_hash() -> str:
    return passwords.hash_password(secrets.token_urlsafe(16))
