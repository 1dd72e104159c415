"""The login check's app-password usage file, taken through the root helper.

Dovecot's Lua passdb (deploy/dovecot/mailadmin-login-cache.lua) appends one
line, "ID IP SERVICE UNIXTIME", to app_usage_dir/app-password-usage for each
login it accepts with an app password. Dovecot's auth worker makes that file
0600, its own user's (measured: its umask is 077, and Lua cannot chmod), so
neither the panel nor the agent can read it: the helper's `app-usage take`
renames it aside and prints its lines, `app-usage done` forgets them once the
panel has applied them. Until then a failed sync reads the same lines again,
and lines written meanwhile go to a new file (or stay in the taken one).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost import privileged


@dataclass(frozen=True)
class Taken:
    ident: str  # which taken file (inode and change time), for `done`
    size: int  # bytes handed over
    lines: list[str]

    @property
    def empty(self) -> bool:
        return self.size == 0


NOTHING = Taken("none", 0, [])


def take() -> Taken:
    """The usage lines recorded since the last `done`. Raises privileged.HelperError."""
    output = privileged.run_helper("app-usage", "take")
    header, _, body = output.partition("\n")
    ident, _, size = header.strip().partition(" ")
    if ident == "none" or not size.isdigit():
        return NOTHING
    return Taken(ident, int(size), body.splitlines())


def done(taken: Taken) -> str:
    """Forget what `taken` handed over (the helper keeps lines added since)."""
    if taken.ident == NOTHING.ident:
        return ""
    return privileged.run_helper("app-usage", "done", taken.ident, str(taken.size)).strip()
