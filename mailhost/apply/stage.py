"""Staging and testing a rendered configuration, as far as no root is needed:
what would change against the live files (names and line counts only), the
daemons' checkers that an unprivileged user may run, and the TLS files the
configuration names.
"""

from __future__ import annotations

import difflib
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from mailhost import render

# Each checker parses a handful of files; anything slower is stuck.
CHECKER_TIMEOUT = 30
# Beside the rendered tree in the staging directory, never installed.
CHECK_DIR = ".check"
REDACTED = "********"


@dataclass(frozen=True)
class FileChange:
    """What applying would do to one rendered file, without its content."""

    path: str  # relative, as render() names it: postfix/main.cf
    status: str  # "added", "changed" or "unreadable" (the live file cannot be read here)
    added: int = 0
    removed: int = 0

    @property
    def daemon(self) -> str:
        return self.path.partition("/")[0]

    def as_json(self) -> dict[str, object]:
        return {"path": self.path, "status": self.status,
                "added": self.added, "removed": self.removed}

    def __str__(self) -> str:
        if self.status == "changed":
            return f"{self.path} (+{self.added} -{self.removed})"
        return f"{self.path} ({self.status}, {self.added} lines)"


@dataclass(frozen=True)
class CheckerResult:
    name: str
    command: str
    returncode: int | None  # None: the checker could not be run
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def __str__(self) -> str:
        status = "not run" if self.returncode is None else f"exit {self.returncode}"
        text = f"$ {self.command}\n[{status}]"
        return f"{text}\n{self.output.rstrip()}" if self.output.strip() else text


# ---------------------------------------------------------------- TLS files


def tls_problem() -> str:
    """Why the TLS certificate or key the configuration names cannot serve, or "".

    Postfix starts without them and fails every TLS handshake (the submission
    port, which requires TLS, is dead); Dovecot refuses to start. Both read
    them as root, so a regular, non-empty file is readable to them; a path the
    agent may not look into (/etc/ssl/private) is left to them.
    """
    for setting in ("MAILADMIN_TLS_CERT", "MAILADMIN_TLS_KEY"):
        path = str(getattr(settings, setting))
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return (f"{setting}={path}: no such file; refusing a configuration whose TLS "
                    "certificate or key is missing (point the setting at the host's "
                    "certificate, or run `make-ssl-cert generate-default-snakeoil`)")
        except PermissionError:
            continue
        except OSError as exc:
            return f"{setting}={path}: cannot be read ({exc.strerror})"
        if not stat.S_ISREG(info.st_mode):
            return f"{setting}={path}: not a regular file; the daemons cannot read it"
        if info.st_size == 0:
            return f"{setting}={path}: the file is empty; the daemons cannot use it"
        try:
            with open(path, "rb"):
                pass
        except PermissionError:
            continue
        except OSError as exc:
            return f"{setting}={path}: cannot be read ({exc.strerror})"
    return ""


# ---------------------------------------------------------------- compare


def live_path(relative: str, options: render.RenderOptions) -> Path:
    """Where a rendered file (`postfix/...`, `dovecot/...`, `rspamd/local.d/...`) is
    installed on this host."""
    daemon, _, rest = relative.partition("/")
    base = {"postfix": options.postfix_dir, "dovecot": options.dovecot_dir,
            "rspamd": options.rspamd_dir}[daemon]
    return Path(base) / rest


def compare(files: dict[str, str], options: render.RenderOptions) -> list[FileChange]:
    """The rendered files that differ from the live ones, with line counts only."""
    changes = []
    for relative, content in sorted(files.items()):
        new = content.splitlines()
        try:
            current = live_path(relative, options).read_text()
        except FileNotFoundError:
            changes.append(FileChange(relative, "added", added=len(new)))
            continue
        except (PermissionError, UnicodeDecodeError):
            # A 0640 root:dovecot file the agent may not read: counted as a
            # change; the helper's install compares it and may answer "unchanged".
            changes.append(FileChange(relative, "unreadable", added=len(new)))
            continue
        if current == content:
            continue
        added = removed = 0
        for line in difflib.unified_diff(current.splitlines(), new, lineterm="", n=0):
            if line.startswith(("+++", "---")):
                continue
            added += line.startswith("+")
            removed += line.startswith("-")
        changes.append(FileChange(relative, "changed", added=added, removed=removed))
    return changes


# ---------------------------------------------------------------- checkers


def run_checkers(staged: Path, options: render.RenderOptions) -> list[CheckerResult]:
    """The daemons' own checkers on the staged files, as far as no root is needed.

    An apply then runs the root helper's checks too (install.helper_checks):
    `postfix -c DIR check` and doveconf on the live tree with the staged files in it.
    """
    return [postfix_check(staged), dovecot_check(staged, options)]


def postfix_check(staged: Path) -> CheckerResult:
    """`postconf -c DIR -n` parses main.cf and master.cf (a syntax error is fatal).

    Its standard output is the whole configuration: only stderr (warnings,
    the fatal error) is kept. Map paths inside main.cf name the live tree,
    so a warning about a live map file not there yet is expected on a first
    apply. `postfix -c DIR check` needs root: see helper_check.
    """
    return _run("postconf", ["postconf", "-c", str(staged / "postfix"), "-n"])


def dovecot_check(staged: Path, options: render.RenderOptions) -> CheckerResult:
    """`doveconf -c FILE -n` on a wrapper that includes the staged fragment.

    The panel renders a conf.d fragment, not a whole dovecot.conf, and the
    live dovecot.conf includes the live conf.d: this checks the fragment's
    own settings (an unknown setting is exit 89), not how it combines with
    the host's other files. The combined check is the helper's (next step).
    """
    wrapper_dir = staged / CHECK_DIR
    wrapper_dir.mkdir(mode=0o700, exist_ok=True)
    wrapper = wrapper_dir / "dovecot.conf"
    wrapper.write_text(
        "# mailadmin apply_config: checks the staged fragment on its own.\n"
        f"base_dir = {wrapper_dir / 'run'}\n"
        "protocols = imap lmtp\n"
        "ssl = no\n"
        f"!include {staged / 'dovecot' / 'conf.d' / '90-mailadmin.conf'}\n")
    return _run("doveconf", ["doveconf", "-c", str(wrapper), "-n"])


def _run(name: str, args: list[str]) -> CheckerResult:
    command = " ".join(args)
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=CHECKER_TIMEOUT,
                              check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return CheckerResult(name, command, None, f"{args[0]} is not installed here")
    except subprocess.TimeoutExpired:
        return CheckerResult(name, command, None, f"no answer within {CHECKER_TIMEOUT} s")
    return CheckerResult(name, command, done.returncode, done.stderr)


def _first_error(result: CheckerResult) -> str:
    """The checker's own message in one line, for the job's error and the command."""
    lines = [line.strip() for line in result.output.splitlines() if line.strip()]
    fatal = [line for line in lines if "fatal" in line.lower() or "error" in line.lower()]
    message = (fatal or lines or ["failed"])[0]
    return f"{result.name} refused the staged configuration: {message}"


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text
