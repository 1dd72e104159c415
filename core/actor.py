"""Who asked for a write, as a typed value.

Services take an `Actor`, never a bare string, and the audit row keeps its
label: an account's user name, a mailbox user's address, `cli:<login>` for
a shell user, or the name of the panel's own work such as `beat`.
"""

from __future__ import annotations

import enum
import getpass
import os
from dataclasses import dataclass

# Session accounts of mailbox users carry this prefix, so they can never be
# confused with (or become) an admin account of the same address.
MAILBOX_ACCOUNT_PREFIX = "mailbox:"
CLI_PREFIX = "cli:"


class ActorKind(enum.StrEnum):
    ACCOUNT = "account"
    MAILBOX = "mailbox"
    CLI = "cli"
    SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    name: str

    @classmethod
    def account(cls, username: str) -> Actor:
        return cls(ActorKind.ACCOUNT, username)

    @classmethod
    def mailbox(cls, address: str) -> Actor:
        """A mailbox user acting on their own mailbox, labelled by its address."""
        return cls(ActorKind.MAILBOX, address)

    @classmethod
    def cli(cls) -> Actor:
        """The shell user running a management command."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return cls(ActorKind.CLI, user)

    @property
    def label(self) -> str:
        if self.kind is ActorKind.CLI:
            return CLI_PREFIX + self.name
        return self.name

    @property
    def is_account(self) -> bool:
        return self.kind is ActorKind.ACCOUNT

    def __str__(self) -> str:
        return self.label


# The panel's own work.
BEAT = Actor(ActorKind.SYSTEM, "beat")
COMMAND = Actor(ActorKind.SYSTEM, "command")
QUICKSTART = Actor(ActorKind.SYSTEM, "quickstart")
# Alias destinations pruned in another domain when their address is deleted.
ELSEWHERE = Actor(ActorKind.SYSTEM, "system:address deleted in another domain")
