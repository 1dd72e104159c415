"""apply_config on the real Postfix of the private test stack, through the real
root helper (run directly as root with `--conf` naming the stack's directories).

The stack is shared by the whole session: the `applying` fixture snapshots its
Postfix and Dovecot files and puts back whatever an apply left changed (and
reloads, or starts a Postfix whose master is gone), even when a test fails.
"""

from __future__ import annotations

import imaplib
import os
import smtplib
import socket
import uuid
from pathlib import Path

import pytest

from core.models import AuditEntry
from mailhost import apply, render
from mailhost.apply import stage
from tests.integration.applying import (
    BOB,
    PW,
    applying,
    delivered,
    postconf,
    reload_count,
    run_apply,
)
from tests.integration.mailstack import run

pytestmark = [pytest.mark.daemons,
              pytest.mark.skipif(os.geteuid() != 0, reason="the helper runs as root")]

__all__ = ["applying"]  # the fixture, imported for pytest


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


def allow(settings, line: str) -> None:
    """Add a line to the helper.conf the applying fixture gave the helper."""
    conf = Path(settings.MAILADMIN_HELPER_COMMAND[-1])
    conf.write_text(conf.read_text() + line + "\n")


def test_a_change_that_breaks_postfix_check_installs_nothing(applying, settings, monkeypatch):
    # The agent's own postconf only warns (exit 0); the helper's check as root refuses.
    real = render.render

    def broken(options):
        files = real(options)
        files["postfix/main.cf"] += "smtpd_bogus_parameter = 1\n"
        return files

    monkeypatch.setattr(render, "render", broken)
    # Root lets the name through the helper's allow-list: Postfix's own check judges it.
    allow(settings, "allow_postfix = smtpd_bogus_parameter")
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


def test_a_dovecot_change_that_breaks_doveconf_installs_nothing(applying, settings,
                                                               monkeypatch):
    # Unknown to this Dovecot, and inside a block the stack's dovecot.conf
    # opens nowhere else. The agent's own doveconf (on the fragment alone) would
    # refuse it first; without it, the helper's check as root, on a copy of the
    # live tree with the staged fragment laid over it, must refuse it too.
    real = render.render

    def broken(options):
        files = real(options)
        files["dovecot/conf.d/90-mailadmin.conf"] += "service imap {\n  no_such_setting = 1\n}\n"
        return files

    monkeypatch.setattr(render, "render", broken)
    monkeypatch.setattr(apply, "run_checkers",
                        lambda staged, options: [stage.postfix_check(staged)])
    allow(settings, "allow_dovecot = no_such_setting")
    fragment = applying.etc / "dovecot" / "conf.d" / "90-mailadmin.conf"
    before = fragment.read_bytes()

    done = run_apply()

    assert (done.state, done.outcome) == ("failed", "check_failed"), done.checker_output
    assert done.error.startswith("dovecot check refused the staged configuration: dovecot: ")
    assert "no_such_setting" in done.error
    # The staged fragment was parsed, named by the live path it would take.
    assert f"{fragment}" in done.error
    assert "\n" not in done.error
    assert fragment.read_bytes() == before
    assert (done.backups, done.reloaded, done.probes) == ({}, [], [])
    assert AuditEntry.objects.filter(action="mailhost.apply",
                                     after__outcome="check_failed").count() == 1
    delivered(applying)


def test_a_good_dovecot_change_passes_the_helpers_check_and_is_live(applying, monkeypatch):
    real = render.render

    def changed(options):
        files = real(options)
        files["dovecot/conf.d/90-mailadmin.conf"] += "mail_max_userip_connections = 17\n"
        return files

    monkeypatch.setattr(render, "render", changed)

    done = run_apply()

    assert (done.state, done.outcome, done.error) == ("done", "applied", ""), done.checker_output
    assert "dovecot check: ok" in done.checker_output
    assert done.reloaded == ["dovecot"] and list(done.backups) == ["dovecot"]
    assert "mail_max_userip_connections = 17" in run(
        ["doveconf", "-c", str(applying.dovecot_conf), "-n"]).stdout
    assert ("imap", True) in [(p["name"], p["ok"]) for p in done.probes]
    delivered(applying)


def test_an_smtp_session_open_during_a_postfix_reload_completes(applying, settings):
    # A reload tells Postfix's smtpd processes to exit once their client is
    # done, never in the middle of a session: a message half sent is accepted.
    tag = f"marker-{uuid.uuid4().hex}"
    settings.MAILADMIN_MYNETWORKS = "127.0.0.254/32 10.11.12.0/24"
    reloads = reload_count(applying)
    with smtplib.SMTP("127.0.0.1", applying.ports["smtp"], timeout=30) as smtp:
        assert smtp.ehlo("client.mailadmin.test")[0] == 250
        assert smtp.mail("sender@outside.test")[0] == 250
        assert smtp.rcpt(BOB)[0] == 250
        # Postfix's cleanup is still expanding the recipient (more lookups)
        # while the apply writes: in WAL mode no lookup waits for a commit.

        done = run_apply()

        assert (done.state, done.outcome, done.reloaded) == ("done", "applied", ["postfix"])
        assert reload_count(applying) == reloads + 1
        code, answer = smtp.data(f"From: sender@outside.test\r\nTo: {BOB}\r\n"
                                 f"Subject: across a reload\r\n\r\n{tag}\r\n")
    assert code == 250, (answer, applying.tail("postfix.log"))
    applying.wait_for_mail(BOB, tag)


def test_an_imap_session_open_during_a_dovecot_reload_keeps_working(applying, settings):
    # Dovecot's reload starts new processes for new connections; an imap
    # process serving a signed-in client keeps it, with the old configuration.
    settings.MAILADMIN_DOVECOT_AUTH_CACHE_TTL = "59 mins"
    tag = f"marker-{uuid.uuid4().hex}"
    imap = imaplib.IMAP4("127.0.0.1", applying.ports["imap"], timeout=30)
    try:
        imap.login(BOB, PW)
        assert imap.select("INBOX")[0] == "OK"

        done = run_apply()

        assert (done.state, done.outcome, done.reloaded) == ("done", "applied", ["dovecot"])
        assert [c["path"] for c in done.changes] == ["dovecot/conf.d/90-mailadmin.conf"]
        assert "auth_cache_ttl = 59 mins" in run(
            ["doveconf", "-c", str(applying.dovecot_conf), "-n"]).stdout
        assert imap.noop()[0] == "OK"
        # Mail delivered after the reload shows in the session opened before it.
        sent = applying.send(BOB, body=tag)
        assert sent.returncode == 0, (sent.stdout[-2000:], applying.tail("postfix.log"))
        applying.wait_for_mail(BOB, tag)
        assert imap.select("INBOX")[0] == "OK"
        status, found = imap.search(None, "BODY", tag)
        assert status == "OK" and found[0].split(), found
    finally:
        imap.logout()
