"""Who hears that the addresses delivering to a mailbox changed.

An alias listing a mailbox, and an alias domain of the mailbox's domain, are
more addresses the mailbox receives at. An app above this one may keep
something per mailbox made from them (vacation: the auto-reply's
`:addresses`, which Dovecot cannot work out at delivery on its own). It
registers a listener when Django starts (its AppConfig.ready), as for a
domain's checklist and deletion, so domains imports none of those apps.

The alias and alias-domain services call `addresses_changed` inside their
transaction, after writing: a listener's rows commit or roll back with the
change. With `domain`, the caller holds that domain's row lock.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from domains.models import Domain


class Listener(Protocol):
    def __call__(self, *, mailboxes: Collection[str], domain: Domain | None) -> None: ...


_listeners: list[Listener] = []


def on_addresses_changed(listener: Listener) -> None:
    """Call `listener(mailboxes=..., domain=...)` after every such change (once however
    often registered)."""
    if listener not in _listeners:
        _listeners.append(listener)


def addresses_changed(*, mailboxes: Collection[str] = (), domain: Domain | None = None) -> None:
    """`mailboxes`: addresses an alias listed before or after the change (not all of
    them mailboxes); `domain`: every mailbox of that domain (an alias domain of it
    changed)."""
    targets = {address for address in mailboxes if address and not address.startswith("@")}
    if not targets and domain is None:
        return
    for listener in _listeners:
        listener(mailboxes=targets, domain=domain)
