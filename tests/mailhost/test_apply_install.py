"""apply_config's root part with the real helper run directly as root
(`--conf` on a scratch tree, as test_helper.py does): the helper's check,
install with backups, reload of only the changed daemon, probes, roll back.

The checks are real (`postfix check`, `postconf`, `doveconf`); reloads go to
stand-in binaries that record their arguments; the probes talk to small
greeting servers on loopback standing in for the daemons' listeners, and the
map lookup to a stand-in postmap (the rendered maps name a database that is
not there).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core.actor import Actor
from core.models import AuditEntry
from mailhost import apply, render
from mailhost.apply import probes
from mailhost.models import ConfigApply
from tests.mailhost.conftest import DAEMON_PASSWORD, install

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "deploy" / "helper" / "mailadmin-helper"
ALICE = Actor.account("alice")

pytestmark = [
    pytest.mark.django_db, pytest.mark.processes,
    pytest.mark.skipif(os.geteuid() != 0, reason="the helper runs as root"),
    pytest.mark.skipif(not (shutil.which("postconf") or Path("/usr/sbin/postconf").exists())
                       or not shutil.which("doveconf"),
                       reason="needs Postfix's and Dovecot's checkers"),
]


class Greeter:
    """A listener that greets every connection the way a daemon would."""

    def __init__(self, greeting: str) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.greeting = greeting.encode() + b"\r\n"
        self.connections = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.connections += 1
                conn.sendall(self.greeting)

    def close(self) -> None:
        # A close alone leaves the listener open to the thread blocked in accept().
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class Milter(Greeter):
    """A listener answering the milter option negotiation, as Rspamd's proxy does."""

    def __init__(self) -> None:
        super().__init__("")

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.connections += 1
                size = struct.unpack("!I", conn.recv(4))[0]
                if conn.recv(size)[:1] == b"O":
                    conn.sendall(struct.pack("!IcIII", 13, b"O", 6, 0x1FF, 0x1FFFFF))
                conn.recv(64)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Host:
    live: Path
    root: Path
    backups: Path
    calls: Path  # what the stand-in postfix (reload/status/start) and doveadm were asked
    greeters: dict[str, Greeter] = field(default_factory=dict)

    def reloads(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def backup_ids(self, daemon: str = "postfix") -> list[str]:
        base = self.backups / daemon
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []


def stand_in(path: Path, calls: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def host(live, settings, tmp_path, monkeypatch) -> Host:
    """The live tree as rendered now, the helper configured on it, and listeners."""
    h = Host(live=live, root=tmp_path, backups=tmp_path / "backups",
             calls=tmp_path / "calls.log")
    for name, greeting in (("smtp", "220 mail.example.org ESMTP"),
                           ("submission", "220 mail.example.org ESMTP"),
                           ("imap", "* OK [CAPABILITY IMAP4rev1] Dovecot ready."),
                           ("lmtp", "220 mail.example.org Dovecot ready.")):
        h.greeters[name] = Greeter(greeting)
    h.greeters["rspamd"] = Milter()
    settings.MAILADMIN_SMTP_LISTEN = f"127.0.0.1:{h.greeters['smtp'].port}"
    settings.MAILADMIN_SUBMISSION_LISTEN = f"127.0.0.1:{h.greeters['submission'].port}"
    settings.MAILADMIN_IMAP_LISTEN = f"127.0.0.1:{h.greeters['imap'].port}"
    settings.MAILADMIN_LMTP = f"inet:127.0.0.1:{h.greeters['lmtp'].port}"
    settings.MAILADMIN_RSPAMD_MILTER = f"inet:127.0.0.1:{h.greeters['rspamd'].port}"
    if Path("/etc/rspamd/rspamd.conf").exists():
        # What the helper's rspamd check lays the staged local.d into.
        shutil.copytree("/etc/rspamd", live / "rspamd", symlinks=True)
    install(live)
    # What the helper's dovecot check lays the staged files into.
    (live / "dovecot" / "dovecot.conf").write_text(
        f"base_dir = {tmp_path / 'dovecot-run'}\nprotocols = imap lmtp\nssl = no\n"
        "!include conf.d/90-mailadmin.conf\n")
    postfix = stand_in(tmp_path / "postfix", h.calls, (
        'for last in "$@"; do :; done\n'
        'case "$last" in reload|status|start)\n'
        f'  echo "postfix $*" >> {h.calls}; echo "postfix $last"; exit 0;;\nesac\n'
        'exec /usr/sbin/postfix "$@"'))
    doveadm = stand_in(tmp_path / "doveadm", h.calls, f'echo "doveadm $*" >> {h.calls}')
    conf = tmp_path / "helper.conf"
    conf.write_text(
        f"staging_root = {settings.MAILADMIN_STAGING_DIR}\nbackup_root = {h.backups}\n"
        f"postfix_dir = {live / 'postfix'}\ndovecot_dir = {live / 'dovecot'}\n"
        f"rspamd_dir = {live / 'rspamd' / 'local.d'}\n"
        f"rspamd_pid_file = {tmp_path / 'rspamd.pid'}\n"
        f"postfix_bin = {postfix}\ndoveadm_bin = {doveadm}\nkeep_backups = 3\n")
    settings.MAILADMIN_HELPER_COMMAND = ["/usr/bin/python3", "-I", str(HELPER), "--conf",
                                         str(conf)]
    postmap = stand_in(tmp_path / "postmap", h.calls, 'echo "postmap $*" >> ' + str(h.calls)
                       + "\nexit 1")
    monkeypatch.setattr(probes, "POSTMAP", postmap)
    monkeypatch.setattr(probes, "ATTEMPTS", 3)
    monkeypatch.setattr(probes, "DELAY", 0.05)
    monkeypatch.setattr(probes, "TIMEOUT", 1.0)
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.delenv("SUDO_UID", raising=False)
    yield h
    for greeter in h.greeters.values():
        greeter.close()


def run_apply() -> ConfigApply:
    requested = apply.request_apply(actor=ALICE, check_only=False, enqueue=False)
    done = apply.run_apply(requested.pk)
    assert done is not None
    return done


def changed_render(monkeypatch, path: str, line: str) -> None:
    """Render as usual, with `line` appended to the rendered file `path`."""
    real = render.render

    def with_line(options):
        files = real(options)
        files[path] += line + "\n"
        return files

    monkeypatch.setattr(render, "render", with_line)


# ---------------------------------------------------------------- nothing, then a change


def test_with_nothing_changed_nothing_is_installed_or_reloaded(host):
    first, second = run_apply(), run_apply()

    for done in (first, second):
        assert (done.state, done.outcome, done.error) == ("done", "nothing", "")
        assert (done.changes, done.backups, done.reloaded, done.probes) == ([], {}, [], [])
        assert done.rolled_back is False
    assert host.reloads() == []
    assert host.backup_ids() == [] and host.backup_ids("dovecot") == []


def test_a_change_is_installed_and_only_its_daemon_reloaded_and_probed(host, settings):
    settings.MAILADMIN_MYNETWORKS = "127.0.0.0/8 10.9.8.0/24"
    main_cf = host.live / "postfix" / "main.cf"

    done = run_apply()

    assert (done.state, done.outcome, done.error) == ("done", "applied", "")
    assert done.changes == [{"path": "postfix/main.cf", "status": "changed",
                             "added": 1, "removed": 1}]
    assert "mynetworks = 127.0.0.0/8 10.9.8.0/24\n" in main_cf.read_text()
    [backup_id] = host.backup_ids()
    assert done.backups == {"postfix": backup_id}
    assert "10.9.8.0" not in (host.backups / "postfix" / backup_id / "main.cf").read_text()
    assert done.reloaded == ["postfix"]
    # Reloaded once, never restarted; Dovecot untouched.
    postmap_call = (f"postmap -c {host.live / 'postfix'} -q {probes.PROBE_KEY} "
                    f"mysql:{host.live / 'postfix'}/mailadmin/domains.cf")
    assert host.reloads() == [f"postfix -c {host.live / 'postfix'} reload", postmap_call]
    assert [(p["name"], p["ok"], p["skipped"]) for p in done.probes] == [
        ("smtp", True, False), ("submission", True, False), ("map", True, False)]
    assert done.probes[0]["detail"] == "220 mail.example.org ESMTP"
    assert done.probes[2]["detail"] == "not found, as expected"
    assert host.greeters["imap"].connections == 0  # Dovecot was not reloaded: not probed
    assert "postfix check: ok" in done.checker_output
    assert f"install postfix: backup {backup_id}" in done.checker_output

    # Applied once: the next apply has nothing to do.
    again = run_apply()
    assert (again.outcome, again.reloaded) == ("nothing", [])
    assert len(host.reloads()) == 2


def test_a_dovecot_change_reloads_and_probes_dovecot_only(host, monkeypatch):
    changed_render(monkeypatch, "dovecot/conf.d/90-mailadmin.conf",
                   "mail_max_userip_connections = 20")

    done = run_apply()

    assert (done.state, done.outcome, done.error) == ("done", "applied", "")
    assert [c["path"] for c in done.changes] == ["dovecot/conf.d/90-mailadmin.conf"]
    assert done.reloaded == ["dovecot"] and list(done.backups) == ["dovecot"]
    assert host.reloads() == [f"doveadm -c {host.live / 'dovecot'}/dovecot.conf reload"]
    assert [(p["name"], p["ok"]) for p in done.probes] == [("imap", True), ("lmtp", True)]
    assert "dovecot check: ok" in done.checker_output


@pytest.fixture
def rspamd(host):
    """A stand-in Rspamd main process for the helper's reload (SIGHUP by its pid
    file, as without systemd): a script named rspamd that logs each SIGHUP."""
    if not (host.live / "rspamd" / "rspamd.conf").exists():
        if os.environ.get("CI"):
            pytest.fail("needs Debian's rspamd (bin/test installs it)")
        pytest.skip("needs Debian's rspamd")
    script = stand_in(host.root / "rspamd", host.calls, (
        f"trap 'echo \"rspamd SIGHUP\" >> {host.calls}' HUP\n"
        "while :; do sleep 0.05; done"))
    process = subprocess.Popen([script])
    (host.root / "rspamd.pid").write_text(f"{process.pid}\n")
    yield process
    process.kill()
    process.wait()


def wait_for_reloads(host: Host, count: int) -> list[str]:
    deadline = time.monotonic() + 5
    while len(host.reloads()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return host.reloads()


def test_an_rspamd_change_is_checked_installed_and_only_rspamd_reloaded(
        host, rspamd, monkeypatch):
    changed_render(monkeypatch, "rspamd/local.d/milter_headers.conf",
                   "# a change only Rspamd reads")
    installed = host.live / "rspamd" / "local.d" / "milter_headers.conf"

    done = run_apply()

    assert (done.state, done.outcome, done.error) == ("done", "applied", "")
    assert [c["path"] for c in done.changes] == ["rspamd/local.d/milter_headers.conf"]
    [backup_id] = host.backup_ids("rspamd")
    assert done.backups == {"rspamd": backup_id} and done.reloaded == ["rspamd"]
    assert "# a change only Rspamd reads" in installed.read_text()
    assert "rspamd check: syntax OK" in done.checker_output
    assert f"install rspamd: backup {backup_id}" in done.checker_output
    # Postfix and Dovecot neither reloaded nor probed; Rspamd's milter probed.
    assert wait_for_reloads(host, 1) == ["rspamd SIGHUP"]
    assert [(p["name"], p["ok"], p["detail"]) for p in done.probes] == [
        ("rspamd", True, "milter answered (protocol version 6)")]
    assert host.backup_ids() == [] and host.backup_ids("dovecot") == []
    assert host.greeters["rspamd"].connections == 1
    assert all(g.connections == 0 for name, g in host.greeters.items() if name != "rspamd")

    again = run_apply()
    assert (again.outcome, again.reloaded) == ("nothing", [])


def test_an_rspamd_that_stops_answering_after_its_reload_is_rolled_back(
        host, rspamd, monkeypatch):
    changed_render(monkeypatch, "rspamd/local.d/milter_headers.conf",
                   "# a change after which Rspamd's milter does not answer")
    installed = host.live / "rspamd" / "local.d" / "milter_headers.conf"
    before = installed.read_text()
    host.greeters["rspamd"].close()

    done = run_apply()

    assert (done.state, done.outcome, done.rolled_back) == ("failed", "rolled_back", True)
    [backup_id] = host.backup_ids("rspamd")
    port = host.greeters["rspamd"].port
    assert done.error.startswith(f"probe rspamd 127.0.0.1:{port} failed: ")
    assert done.error.endswith(f"; rolled back to rspamd {backup_id}")
    assert "\n" not in done.error
    assert installed.read_text() == before
    # Reloaded with the change, and again with the files put back.
    assert wait_for_reloads(host, 2) == ["rspamd SIGHUP", "rspamd SIGHUP"]
    assert [(p["name"], p["ok"], p["attempts"]) for p in done.probes] == [("rspamd", False, 3)]
    audit = AuditEntry.objects.get(action="mailhost.apply")
    assert audit.after["failed_probes"] == ["rspamd"]


def test_a_broken_rspamd_file_is_refused_by_its_checker_and_nothing_installed(
        host, rspamd, monkeypatch):
    changed_render(monkeypatch, "rspamd/local.d/worker-proxy.inc", "broken {")
    installed = host.live / "rspamd" / "local.d" / "worker-proxy.inc"
    before = installed.read_text()

    done = run_apply()

    assert (done.state, done.outcome) == ("failed", "check_failed")
    assert done.error.startswith("rspamd check refused the staged configuration: rspamd: ")
    assert "rspamd/local.d/worker-proxy.inc:" in done.error and "brace" in done.error
    assert "\n" not in done.error
    assert installed.read_text() == before
    assert host.backup_ids("rspamd") == [] and host.reloads() == []
    assert (done.backups, done.reloaded, done.probes) == ({}, [], [])
    assert AuditEntry.objects.filter(action="mailhost.apply",
                                     after__outcome="check_failed").count() == 1


def test_the_record_and_the_audit_hold_no_secret(host, settings):
    settings.MAILADMIN_MYNETWORKS = "127.0.0.0/8 10.9.8.0/24"
    sql = host.live / "dovecot" / "dovecot-sql.conf.ext"
    assert DAEMON_PASSWORD in sql.read_text()

    done = run_apply()

    rows = list(AuditEntry.objects.order_by("pk").values("actor", "action", "after"))
    assert [(r["actor"], r["action"]) for r in rows] == [
        ("alice", "mailhost.apply_request"), ("agent host.mail.example.org", "mailhost.apply")]
    after = rows[1]["after"]
    assert (after["outcome"], after["files"], after["backups"], after["reloaded"],
            after["rolled_back"]) == ("applied", ["postfix/main.cf"], done.backups,
                                      ["postfix"], False)
    stored = json.dumps([list(ConfigApply.objects.values()),
                         list(AuditEntry.objects.values())], default=str)
    assert DAEMON_PASSWORD not in stored
    assert "10.9.8.0" not in stored  # no file content either


# ---------------------------------------------------------------- refusals


def test_a_change_the_helpers_checker_refuses_installs_nothing(host, settings, monkeypatch):
    # postconf -n as the agent runs it only warns (exit 0); the helper's check fails on it.
    # (A name the helper's allow-list lacks would be refused before its checker runs:
    # root allows this one, so the checker's verdict is what is tested.)
    conf = Path(settings.MAILADMIN_HELPER_COMMAND[-1])
    conf.write_text(conf.read_text() + "allow_postfix = smtpd_bogus_parameter\n")
    changed_render(monkeypatch, "postfix/main.cf", "smtpd_bogus_parameter = 1")
    before = (host.live / "postfix" / "main.cf").read_text()

    done = run_apply()

    assert (done.state, done.outcome) == ("failed", "check_failed")
    assert done.error.startswith("postfix check refused the staged configuration: ")
    assert "unused parameter: smtpd_bogus_parameter=1" in done.error
    assert "\n" not in done.error
    assert (host.live / "postfix" / "main.cf").read_text() == before
    assert host.backup_ids() == [] and host.reloads() == []
    assert (done.backups, done.reloaded, done.probes) == ({}, [], [])
    assert AuditEntry.objects.filter(action="mailhost.apply",
                                     after__outcome="check_failed").count() == 1


def test_a_setting_the_helper_does_not_allow_installs_nothing(host, monkeypatch):
    changed_render(monkeypatch, "postfix/main.cf", "maillog_file = /etc/cron.d/mail")
    before = (host.live / "postfix" / "main.cf").read_text()

    done = run_apply()

    assert (done.state, done.outcome) == ("failed", "check_failed")
    assert "setting 'maillog_file' is not one the helper allows" in done.error
    assert "allow_postfix = maillog_file" in done.error and "\n" not in done.error
    assert (host.live / "postfix" / "main.cf").read_text() == before
    assert host.backup_ids() == [] and host.reloads() == []


@pytest.mark.parametrize("setting, make, message", [
    ("MAILADMIN_TLS_CERT", None, "no such file; refusing a configuration whose TLS "
                                 "certificate or key is missing"),
    ("MAILADMIN_TLS_KEY", "dir", "not a regular file; the daemons cannot read it"),
    ("MAILADMIN_TLS_KEY", "empty", "the file is empty; the daemons cannot use it"),
])
def test_a_missing_or_unreadable_certificate_or_key_is_refused(host, settings, setting, make,
                                                               message):
    path = host.root / "tls-problem"
    if make == "dir":
        path.mkdir()
    elif make == "empty":
        path.write_text("")
    setattr(settings, setting, str(path))

    done = run_apply()

    assert (done.state, done.outcome) == ("failed", "error")
    assert done.error.startswith(f"cannot render: {setting}={path}: {message}")
    assert "\n" not in done.error
    assert host.reloads() == [] and host.backup_ids() == []
    assert not list(Path(settings.MAILADMIN_STAGING_DIR).glob("apply-*"))


# ---------------------------------------------------------------- roll back


def test_a_failed_probe_restores_the_backup_and_reloads_again(host, settings):
    master_cf = host.live / "postfix" / "master.cf"
    before = master_cf.read_text()
    port = closed_port()
    settings.MAILADMIN_SUBMISSION_LISTEN = f"127.0.0.1:{port}"

    done = run_apply()

    assert (done.state, done.outcome, done.rolled_back) == ("failed", "rolled_back", True)
    [backup_id] = host.backup_ids()
    assert done.backups == {"postfix": backup_id} and done.reloaded == ["postfix"]
    assert done.error.startswith(f"probe submission 127.0.0.1:{port} failed: ")
    assert done.error.endswith(f"; rolled back to postfix {backup_id}")
    assert master_cf.read_text() == before
    reload = f"postfix -c {host.live / 'postfix'} reload"
    assert [line for line in host.reloads() if "reload" in line] == [reload, reload]
    failed = [p for p in done.probes if not p["ok"]]
    assert [(p["name"], p["attempts"]) for p in failed] == [("submission", 3)]
    assert f"restore postfix {backup_id}: done" in done.checker_output
    audit = AuditEntry.objects.get(action="mailhost.apply")
    assert (audit.after["outcome"], audit.after["rolled_back"],
            audit.after["failed_probes"]) == ("rolled_back", True, ["submission"])


def test_a_failed_reload_puts_every_install_back(host, settings, monkeypatch):
    # Both daemons change; Dovecot's reload fails (first, in name order).
    settings.MAILADMIN_MYNETWORKS = "127.0.0.0/8 10.9.8.0/24"
    changed_render(monkeypatch, "dovecot/conf.d/90-mailadmin.conf",
                   "mail_max_userip_connections = 20")
    conf = Path(settings.MAILADMIN_HELPER_COMMAND[-1])
    failing = stand_in(host.root / "doveadm-fails", host.calls, "echo 'doveadm: no'; exit 1")
    conf.write_text(conf.read_text() + f"doveadm_bin = {failing}\n")
    before = {path: path.read_text() for path in (
        host.live / "postfix" / "main.cf", host.live / "dovecot" / "conf.d" / "90-mailadmin.conf")}

    done = run_apply()

    assert {path: path.read_text() for path in before} == before
    assert sorted(done.backups) == ["dovecot", "postfix"] and done.reloaded == []
    # Postfix was restored and reloaded; Dovecot's files are back but it would not reload.
    assert host.reloads() == [f"postfix -c {host.live / 'postfix'} reload"]
    assert (done.state, done.outcome, done.rolled_back) == ("failed", "error", False)
    assert done.error == ("dovecot reload: doveadm: no; ROLLING BACK FAILED: dovecot: "
                          "dovecot reload: doveadm: no")


# ---------------------------------------------------------------- the command


def command(*args: str) -> str:
    printed = io.StringIO()
    call_command("apply_config", *args, stdout=printed, stderr=io.StringIO())
    return printed.getvalue()


def test_the_command_applies_and_prints_what_it_did(host, settings):
    assert command().splitlines()[-1] == "nothing to change; nothing installed or reloaded"

    settings.MAILADMIN_MYNETWORKS = "127.0.0.0/8 10.9.8.0/24"
    printed = command().splitlines()

    [backup_id] = host.backup_ids()
    assert "changed: postfix/main.cf (+1 -1)" in printed
    assert f"install postfix: backup {backup_id}" in printed
    assert any(line.startswith("probe smtp 127.0.0.1:") and ": ok (220 " in line
               for line in printed)
    assert printed[-1] == f"applied 1 file(s); reloaded postfix; postfix backup {backup_id}"
    assert ConfigApply.objects.filter(check_only=False, outcome="applied").count() == 1


def test_the_command_exits_1_with_one_line_when_rolled_back(host, settings):
    settings.MAILADMIN_SUBMISSION_LISTEN = f"127.0.0.1:{closed_port()}"
    printed = io.StringIO()

    with pytest.raises(CommandError) as failed:
        call_command("apply_config", stdout=printed, stderr=io.StringIO())

    assert str(failed.value).startswith("probe submission 127.0.0.1:")
    assert "rolled back to postfix " in str(failed.value)
    assert "\n" not in str(failed.value)
    assert "probe submission" in printed.getvalue() and "FAILED" in printed.getvalue()


# ---------------------------------------------------------------- the page

URL = "/mail-host/apply/"


def test_a_superadmin_applies_from_the_page_and_sees_the_result(
        world, host, settings, django_capture_on_commit_callbacks):
    settings.MAILADMIN_MYNETWORKS = "127.0.0.0/8 10.9.8.0/24"
    client = world.client_for("superadmin")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL)

    assert response.status_code == 302 and response["Location"] == "/mail-host/"
    done = ConfigApply.objects.get()
    assert (done.check_only, done.outcome, done.requested_by) == (False, "applied",
                                                                  "root@admin.test")
    html = client.get("/mail-host/").content.decode()
    assert f'action="{URL}"' in html and "Apply configuration" in html
    assert "root@admin.test (apply)" in html and ">Applied" in html
    assert f"postfix {done.backups['postfix']}" in html
    assert "Reloaded: postfix." in html and "submission 127.0.0.1:" in html


@pytest.mark.parametrize("persona", ["admin_a", "admin_b", "mailbox"])
def test_applying_is_not_found_for_anyone_else(world, live, persona):
    client = world.client_for(persona)

    assert client.post(URL).status_code == 404
    assert client.get(URL).status_code == 404
    assert not ConfigApply.objects.exists()


def test_get_is_not_allowed(world):
    assert world.client_for("superadmin").get(URL).status_code == 405
