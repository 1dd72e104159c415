"""The panel's one door to root: the helper (deploy/helper/mailadmin-helper).

The web panel and the agent never run as root. What needs root (installing a
checked configuration, reloading a daemon, flushing Dovecot's auth cache,
removing a kept Maildir as the vmail user) is a verb of the root-owned helper,
reached through sudo (deploy/sudoers/mailadmin). The helper validates every
argument itself; this module only runs it and turns a failure into one message.
"""

from __future__ import annotations

import subprocess

from django.conf import settings

# A configuration check runs `postfix check`, which takes a few seconds; a
# helper that hangs longer than this is stuck, and the caller is told so.
TIMEOUT_SECONDS = 120


class HelperError(Exception):
    """The helper refused or failed: the message is its one-line reason."""


class NoHelper(HelperError):
    """This host has no helper (MAILADMIN_HELPER_COMMAND is `none`)."""


def has_helper() -> bool:
    """Whether this host has a root helper: `none` says it has not (a development
    machine, or the embedded default running without root or sudo)."""
    return bool(settings.MAILADMIN_HELPER_COMMAND)


def run_helper(verb: str, *args: str) -> str:
    """Run `MAILADMIN_HELPER_COMMAND VERB ARGS...`; returns what it printed."""
    if not has_helper():
        raise NoHelper(f"this host has no root helper (MAILADMIN_HELPER_COMMAND is none): "
                       f"{verb} was not run")
    command = [*settings.MAILADMIN_HELPER_COMMAND, verb, *args]
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=TIMEOUT_SECONDS, check=False)
    except FileNotFoundError:
        raise HelperError(f"the root helper cannot be run: {command[0]} not found "
                          "(MAILADMIN_HELPER_COMMAND)") from None
    except subprocess.TimeoutExpired:
        raise HelperError(f"the root helper did not answer {verb} within "
                          f"{TIMEOUT_SECONDS} s") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        # sudo -n without a rule prints "sudo: a password is required" and exits 1.
        message = lines[-1] if lines else f"exit status {done.returncode}"
        raise HelperError(message.removeprefix("mailadmin-helper: "))
    return done.stdout
