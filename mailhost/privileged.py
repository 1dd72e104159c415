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
# The helper ends itself first, at its own deadline of 100 s
# (DEADLINE_SECONDS in deploy/helper/mailadmin-helper), with its reason.
TIMEOUT_SECONDS = 120
# After the timeout: SIGTERM (sudo relays it to the helper, which stops
# between steps, never inside a swap), this long to end, then SIGKILL.
GRACE_SECONDS = 10


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
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise HelperError(f"the root helper cannot be run: {command[0]} not found "
                          "(MAILADMIN_HELPER_COMMAND)") from None
    with process:
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise HelperError(f"the root helper did not answer {verb} within "
                              f"{TIMEOUT_SECONDS} s ({_stop(process)})") from None
    if process.returncode != 0:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        # sudo -n without a rule prints "sudo: a password is required" and exits 1.
        message = lines[-1] if lines else f"exit status {process.returncode}"
        raise HelperError(message.removeprefix("mailadmin-helper: "))
    return stdout


def _stop(process: subprocess.Popen[str]) -> str:
    """Stop a helper past its time: SIGTERM first, so it ends between steps (a
    swap it is in finishes first), SIGKILL only when it does not end in time."""
    process.terminate()
    try:
        # wait, not communicate: a grandchild that outlives it may hold the pipes open.
        process.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return f"killed: it did not end within {GRACE_SECONDS} s of SIGTERM"
    return "stopped with SIGTERM"
