"""The `applying` fixture the apply_config integration tests share: the private
stack's Postfix and Dovecot files snapshot and put back (reloaded, or a Postfix
whose master is gone started) whatever an apply left changed, even when a test
fails; the panel's render made equal to the stack's files (the harness's own
main.cf edits on top), in this process and, through `stack_render` and
`worker_env`, in an agent worker process.
"""

from __future__ import annotations

import difflib
import json
import shlex
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from core.actor import Actor
from domains import services
from mailhost import apply, render
from mailhost.apply import probes
from mailhost.models import ConfigApply
from mailhost.seed import without_password
from tests.conftest import change_host
from tests.integration.mailstack import MailStack, run

HELPER = Path(__file__).resolve().parents[2] / "deploy" / "helper" / "mailadmin-helper"
PW = "correct horse battery"
BOB = "bob@apply.test"
# The agent worker's copy of the harness's main.cf edits (tests/integration/agent_app.py).
EDITS_ENV = "MAILADMIN_TEST_STACK_EDITS"


def postconf(stack: MailStack, name: str) -> str:
    return run(["postconf", "-c", str(stack.postfix_dir), "-h", name]).stdout.strip()


def reload_count(stack: MailStack) -> int:
    log = stack.root / "postfix.log"
    return log.read_text(errors="replace").count("reload -- version") if log.exists() else 0


def stack_files(stack: MailStack) -> dict[Path, bytes]:
    tree = [stack.postfix_dir / "main.cf", stack.postfix_dir / "master.cf",
            *sorted((stack.postfix_dir / "mailadmin").glob("*.cf")),
            stack.etc / "dovecot" / "conf.d" / "90-mailadmin.conf",
            stack.etc / "dovecot" / "dovecot-sql.conf.ext"]
    return {path: path.read_bytes() for path in tree}


END = "# ---- end mailadmin ----\n"


def stack_edits(stack: MailStack, rendered_main_cf: str) -> tuple[list[str], str]:
    """The `postconf -e` edits the harness made to the rendered main.cf (its own
    queue, log and data directories, ...): KEY=VALUE for the rendered settings it
    changed in place, and the lines it appended after the rendered text."""
    def settings_of(directory: str) -> dict[str, str]:
        lines = run(["postconf", "-c", directory, "-n"]).stdout.splitlines()
        return {key.strip(): value.strip()
                for key, _, value in (line.partition("=") for line in lines)}

    live_text = (stack.postfix_dir / "main.cf").read_text()
    appended = live_text.split(END, 1)[1]
    appended_keys = {line.partition("=")[0].strip() for line in appended.splitlines()}
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch, "main.cf").write_text(rendered_main_cf)
        rendered = settings_of(scratch)
    live = settings_of(str(stack.postfix_dir))
    written = {line.partition("=")[0].strip() for line in rendered_main_cf.splitlines()
               if "=" in line and not line.startswith(("#", " ", "\t"))}
    in_place = [f"{key}={value}" for key, value in live.items()
                if key in written and key not in appended_keys and rendered.get(key) != value]
    return in_place, appended


@pytest.fixture
def applying(stack: MailStack, settings, tmp_path, monkeypatch) -> Iterator[MailStack]:
    # The daemons' database as the stack's files name it (on MariaDB a read-only
    # user with a password): the row holds it without the password, the setting
    # gives the password, as on a production host.
    settings.MAILADMIN_DAEMON_DATABASE_URL = stack.daemon_url
    change_host(daemon_database=without_password(settings.MAILADMIN_DAEMON_DATABASE_URL))
    before = stack_files(stack)
    reloads_before = reload_count(stack)
    # What the panel renders, with the harness's own edits of main.cf on top,
    # so that an apply with nothing changed finds the stack's files unchanged.
    real = render.render
    rendered_main = real(render.RenderOptions(
        host=_host(), database=render.daemon_database(_host())))["postfix/main.cf"]
    in_place, appended = stack_edits(stack, rendered_main)

    as_the_stack = stack_render(real, in_place, appended)
    stack.main_cf_edits = (in_place, appended)
    monkeypatch.setattr(render, "render", as_the_stack)
    settings.MAILADMIN_STAGING_DIR = str(tmp_path / "staging")
    settings.MAILADMIN_IMAP_LISTEN = f"127.0.0.1:{stack.ports['imap']}"
    # The stack's own DOVECOT_DIR/dovecot.conf (the quota warning's -c) comes back after.
    stack_dovecot_conf = stack.etc / "dovecot" / "dovecot.conf"
    saved_dovecot_conf = (stack_dovecot_conf.read_bytes() if stack_dovecot_conf.exists()
                          else None)
    helper_dovecot_conf = _dovecot_conf_for_the_helper(stack)
    conf = tmp_path / "helper.conf"
    conf.write_text(f"staging_root = {tmp_path / 'staging'}\nbackup_root = {tmp_path / 'bk'}\n"
                    f"postfix_dir = {stack.postfix_dir}\n"
                    f"dovecot_dir = {stack.etc / 'dovecot'}\n"
                    # Never the machine's /etc/rspamd (the helper's default).
                    f"rspamd_dir = {tmp_path / 'rspamd' / 'local.d'}\nkeep_backups = 3\n"
                    # The stack's usage directory, which its rendered query names.
                    f"app_usage_dir = {stack.overrides['MAILADMIN_DOVECOT_APP_USAGE_DIR']}\n"
                    # The harness's own main.cf settings (a private instance's queue,
                    # log, DNS): root allows them, as an admin would on a host.
                    f"allow_postfix = {' '.join(harness_settings(in_place, appended))}\n")
    settings.MAILADMIN_HELPER_COMMAND = ["/usr/bin/python3", "-I", str(HELPER), "--conf",
                                         str(conf)]
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.delenv("SUDO_UID", raising=False)
    monkeypatch.setattr(probes, "ATTEMPTS", 4)
    services.create_domain(actor="t", name="apply.test")
    services.create_mailbox(actor="t", email=BOB, password=PW)
    # Refuse to go on unless an apply would leave this stack as it is.
    checked = apply.run_apply(apply.request_apply(
        actor=Actor.account("t"), check_only=True, enqueue=False).pk)
    if checked is None or (checked.outcome, checked.changes) != ("nothing", []):
        ours = as_the_stack(render.RenderOptions(
            host=_host(), database=render.daemon_database(_host())))["postfix/main.cf"]
        diff = difflib.unified_diff(
            (stack.postfix_dir / "main.cf").read_text().splitlines(), ours.splitlines(),
            "live", "rendered", lineterm="")
        pytest.fail(f"an apply would change the stack: {checked and checked.changes}\n"
                    + "\n".join(diff))
    ConfigApply.objects.all().delete()
    try:
        yield stack
    finally:
        _put_back(stack, before, reloads_before)
        if saved_dovecot_conf is None:
            helper_dovecot_conf.unlink(missing_ok=True)
        else:
            helper_dovecot_conf.write_bytes(saved_dovecot_conf)


def _dovecot_conf_for_the_helper(stack: MailStack) -> Path:
    """DOVECOT_DIR/dovecot.conf as on a real host: the stack's own dovecot.conf
    (outside the rendered tree) with the panel's fragment included relatively.

    The helper's `check dovecot` copies DOVECOT_DIR, lays the staged files over
    the copy and runs doveconf on the copy's dovecot.conf: the absolute include
    of the stack's file would parse the live fragment, not the staged one. Its
    `reload dovecot` runs `doveadm -c DOVECOT_DIR/dovecot.conf reload`, which
    finds the running instance by the same base_dir.
    """
    absolute = f"!include {stack.etc / 'dovecot' / 'conf.d' / '90-mailadmin.conf'}\n"
    text = stack.dovecot_conf.read_text()
    assert absolute in text, "the stack's dovecot.conf no longer includes the fragment"
    path = stack.etc / "dovecot" / "dovecot.conf"
    path.write_text(text.replace(absolute, "!include conf.d/90-mailadmin.conf\n"))
    return path


def _host():
    from mailhost.models import MailHost
    return MailHost.current()


def _put_back(stack: MailStack, before: dict[Path, bytes], reloads_before: int) -> None:
    changed = [path for path, data in before.items() if path.read_bytes() != data]
    for path in changed:
        path.write_bytes(before[path])
    pf = ["postfix", "-c", str(stack.postfix_dir)]
    if run([*pf, "status"], check=False).returncode != 0:
        run([*pf, "start"])
    elif changed or reload_count(stack) != reloads_before:
        run([*pf, "reload"])
    if any("dovecot" in str(path) for path in changed):
        stack.doveadm("reload", check=True)



def harness_settings(in_place: list[str], appended: str) -> list[str]:
    """The names of the main.cf settings the harness set (see stack_edits)."""
    names = [edit.partition("=")[0] for edit in in_place]
    names += [line.partition("=")[0].strip() for line in appended.splitlines()
              if "=" in line and not line.startswith(("#", " ", "\t"))]
    return sorted(set(names))


def stack_render(real: Callable[[render.RenderOptions], dict[str, str]], in_place: list[str],
                 appended: str) -> Callable[[render.RenderOptions], dict[str, str]]:
    """render() with the harness's main.cf edits on top (see stack_edits)."""
    def as_the_stack(options: render.RenderOptions) -> dict[str, str]:
        files = real(options)
        with tempfile.TemporaryDirectory() as scratch:
            Path(scratch, "main.cf").write_text(files["postfix/main.cf"])
            if in_place:
                run(["postconf", "-c", scratch, "-e", *in_place])
            files["postfix/main.cf"] = Path(scratch, "main.cf").read_text() + appended
        return files

    return as_the_stack


# What an agent worker needs beside the stack's settings to apply as this process does.
WORKER_SETTINGS = ("MAILADMIN_DAEMON_DATABASE_URL", "MAILADMIN_STAGING_DIR",
                   "MAILADMIN_IMAP_LISTEN", "MAILADMIN_HELPER_COMMAND")


def worker_env(stack: MailStack) -> dict[str, str]:
    """This process's apply settings (the stack's and the fixture's) as a worker's
    environment, with the harness's main.cf edits for agent_app.py."""
    env = {}
    for key in (*stack.overrides, *WORKER_SETTINGS):
        value = getattr(django_settings, key)
        env[key] = shlex.join(value) if isinstance(value, list) else str(value)
    # Empty in the environment means the default (a milter on 11332): "none" is off.
    env["MAILADMIN_RSPAMD_MILTER"] = django_settings.MAILADMIN_RSPAMD_MILTER or "none"
    env[EDITS_ENV] = json.dumps(stack.main_cf_edits)
    return env


def run_apply() -> ConfigApply:
    done = apply.run_apply(apply.request_apply(
        actor=Actor.account("alice"), check_only=False, enqueue=False).pk)
    assert done is not None
    return done


def delivered(stack: MailStack) -> None:
    tag = f"marker-{uuid.uuid4().hex}"
    result = stack.send(BOB, body=tag)
    assert result.returncode == 0, result.stdout
    stack.wait_for_mail(BOB, tag)
