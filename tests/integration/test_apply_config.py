"""apply_config on the real Postfix of the private test stack, through the real
root helper (run directly as root with `--conf` naming the stack's directories).

The stack is shared by the whole session: the `applying` fixture snapshots its
Postfix and Dovecot files and puts back whatever an apply left changed (and
reloads, or starts a Postfix whose master is gone), even when a test fails.
"""

from __future__ import annotations

import difflib
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.actor import Actor
from core.models import AuditEntry
from domains import services
from mailhost import apply, render
from mailhost.apply import probes
from mailhost.models import ConfigApply
from mailhost.seed import without_password
from tests.conftest import change_host
from tests.integration.mailstack import MailStack, run

pytestmark = [pytest.mark.daemons,
              pytest.mark.skipif(os.geteuid() != 0, reason="the helper runs as root")]

HELPER = Path(__file__).resolve().parents[2] / "deploy" / "helper" / "mailadmin-helper"
PW = "correct horse battery"
BOB = "bob@apply.test"


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

    def as_the_stack(options: render.RenderOptions) -> dict[str, str]:
        files = real(options)
        with tempfile.TemporaryDirectory() as scratch:
            Path(scratch, "main.cf").write_text(files["postfix/main.cf"])
            if in_place:
                run(["postconf", "-c", scratch, "-e", *in_place])
            files["postfix/main.cf"] = Path(scratch, "main.cf").read_text() + appended
        return files

    monkeypatch.setattr(render, "render", as_the_stack)
    settings.MAILADMIN_STAGING_DIR = str(tmp_path / "staging")
    settings.MAILADMIN_IMAP_LISTEN = f"127.0.0.1:{stack.ports['imap']}"
    conf = tmp_path / "helper.conf"
    conf.write_text(f"staging_root = {tmp_path / 'staging'}\nbackup_root = {tmp_path / 'bk'}\n"
                    f"postfix_dir = {stack.postfix_dir}\n"
                    f"dovecot_dir = {stack.etc / 'dovecot'}\nkeep_backups = 3\n")
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


def test_with_nothing_changed_nothing_is_installed_or_reloaded(applying):
    reloads = reload_count(applying)

    done = run_apply()

    assert (done.state, done.outcome, done.changes, done.reloaded) == ("done", "nothing", [],
                                                                      [])
    assert reload_count(applying) == reloads
    delivered(applying)


def test_a_good_change_is_installed_reloaded_and_live(applying, settings):
    settings.MAILADMIN_MYNETWORKS = "127.0.0.254/32 10.11.12.0/24"
    reloads = reload_count(applying)

    done = run_apply()

    assert (done.state, done.outcome, done.error) == ("done", "applied", "")
    assert done.changes == [{"path": "postfix/main.cf", "status": "changed",
                             "added": 1, "removed": 1}]
    assert done.reloaded == ["postfix"] and list(done.backups) == ["postfix"]
    assert postconf(applying, "mynetworks") == "127.0.0.254/32 10.11.12.0/24"
    assert reload_count(applying) == reloads + 1
    assert [(p["name"], p["ok"], p["skipped"]) for p in done.probes] == [
        ("smtp", True, False), ("submission", True, False), ("map", True, False)]
    assert done.probes[0]["detail"].startswith("220 mail.mailadmin.test ESMTP")
    delivered(applying)
    # The same again: nothing to change, no reload.
    assert run_apply().outcome == "nothing"
    assert reload_count(applying) == reloads + 1


def test_a_change_that_breaks_postfix_check_installs_nothing(applying, monkeypatch):
    # The agent's own postconf only warns (exit 0); the helper's check as root refuses.
    real = render.render

    def broken(options):
        files = real(options)
        files["postfix/main.cf"] += "smtpd_bogus_parameter = 1\n"
        return files

    monkeypatch.setattr(render, "render", broken)
    main_cf = (applying.postfix_dir / "main.cf").read_text()
    reloads = reload_count(applying)

    done = run_apply()

    assert (done.state, done.outcome) == ("failed", "check_failed")
    assert done.error.startswith("postfix check refused the staged configuration: ")
    assert "unused parameter: smtpd_bogus_parameter=1" in done.error
    assert "\n" not in done.error
    assert (applying.postfix_dir / "main.cf").read_text() == main_cf
    assert reload_count(applying) == reloads and done.backups == {}
    assert AuditEntry.objects.filter(action="mailhost.apply",
                                     after__outcome="check_failed").count() == 1
    delivered(applying)


def test_a_change_that_fails_a_probe_is_rolled_back(applying, settings):
    # Port taken: Postfix's master cannot bind it on reload and exits (fatal
    # bind); the probes find no banner, the helper restores master.cf and
    # its reload starts the master again with the old files.
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    settings.MAILADMIN_SUBMISSION_LISTEN = f"127.0.0.1:{port}"
    master_cf = (applying.postfix_dir / "master.cf").read_text()
    try:
        done = run_apply()
    finally:
        taken.close()

    assert (done.state, done.outcome, done.rolled_back) == ("failed", "rolled_back", True)
    assert f"probe submission 127.0.0.1:{port} failed" in done.error
    assert done.error.endswith(f"; rolled back to postfix {done.backups['postfix']}")
    assert (applying.postfix_dir / "master.cf").read_text() == master_cf
    assert run(["postfix", "-c", str(applying.postfix_dir), "status"],
               check=False).returncode == 0
    audit = AuditEntry.objects.get(action="mailhost.apply")
    assert (audit.after["outcome"], audit.after["rolled_back"]) == ("rolled_back", True)
    delivered(applying)
