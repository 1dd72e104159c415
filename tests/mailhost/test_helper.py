"""The root helper (deploy/helper/mailadmin-helper), its sudoers file, and run_helper.

The helper runs here as root, as the tests do, with `--conf` pointing at a
scratch tree (staging, backups, fake /etc/postfix and /etc/dovecot, a vmail
directory): nothing under the real /etc is written. Checks run the real
`postfix` and `doveconf`; reloads and the auth-cache flush run stand-in
binaries that record their arguments.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailhost import privileged, render
from mailhost.models import MailHost
from tests.mailhost.test_helper_content import load_helper

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "deploy" / "helper" / "mailadmin-helper"
SUDOERS = ROOT / "deploy" / "sudoers" / "mailadmin"
OLD_MAIN = "# old main.cf\n"
OLD_MASTER = "# old master.cf\n"
OLD_MAP = "# old domains map\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the helper runs as root")


@dataclass
class Scratch:
    root: Path
    conf: Path
    staging: Path
    backups: Path
    postfix: Path
    dovecot: Path
    vmail: Path

    def helper(self, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
        return subprocess.run([str(HELPER), "--conf", str(self.conf), *args],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**clean, **(env or {})})

    def stage(self, name: str, files: dict[str, str]) -> Path:
        top = self.staging / name
        for relative, content in files.items():
            (top / relative).parent.mkdir(parents=True, exist_ok=True)
            (top / relative).write_text(content)
        return top

    def configure(self, **values: str) -> None:
        self.conf.write_text(self.conf.read_text()
                             + "".join(f"{k} = {v}\n" for k, v in values.items()))


@pytest.fixture
def scratch(tmp_path: Path) -> Scratch:
    s = Scratch(root=tmp_path, conf=tmp_path / "helper.conf", staging=tmp_path / "staging",
                backups=tmp_path / "backups", postfix=tmp_path / "etc-postfix",
                dovecot=tmp_path / "etc-dovecot", vmail=tmp_path / "vmail")
    for directory in (s.staging, s.postfix / "mailadmin", s.dovecot / "conf.d", s.vmail):
        directory.mkdir(parents=True)
    (s.postfix / "main.cf").write_text(OLD_MAIN)
    (s.postfix / "master.cf").write_text(OLD_MASTER)
    secret = s.postfix / "mailadmin" / "domains.cf"
    secret.write_text(OLD_MAP)
    os.chown(secret, 0, grp.getgrnam("postfix").gr_gid)
    secret.chmod(0o640)
    s.conf.write_text(f"staging_root = {s.staging}\nbackup_root = {s.backups}\n"
                      f"postfix_dir = {s.postfix}\ndovecot_dir = {s.dovecot}\n"
                      f"vmail_dir = {s.vmail}\nvmail_user = nobody\nkeep_backups = 3\n")
    return s


def backups(s: Scratch, daemon: str = "postfix") -> list[str]:
    base = s.backups / daemon
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []


NEW_POSTFIX = {"postfix/main.cf": "# new main.cf\n", "postfix/master.cf": OLD_MASTER,
               "postfix/mailadmin/domains.cf": "# new domains map\n",
               "postfix/mailadmin/new.cf": "# a new map\n"}


# ---------------------------------------------------------------- install and restore


@pytest.mark.processes
def test_install_swaps_the_changed_files_after_a_backup(scratch):
    staged = scratch.stage("run1", NEW_POSTFIX)
    before = (scratch.postfix / "master.cf").stat().st_ino

    done = scratch.helper("install", "postfix", str(staged))

    assert done.returncode == 0, done.stderr
    [backup_id] = backups(scratch)
    assert done.stdout.splitlines() == [
        f"backup {backup_id}", "changed mailadmin/domains.cf", "changed mailadmin/new.cf",
        "changed main.cf"]
    assert (scratch.postfix / "main.cf").read_text() == "# new main.cf\n"
    assert (scratch.postfix / "mailadmin" / "new.cf").read_text() == "# a new map\n"
    # An unchanged file is left alone, not rewritten.
    assert (scratch.postfix / "master.cf").stat().st_ino == before
    # A replaced map keeps its owner and mode; a new map gets the secret default.
    postfix_gid = grp.getgrnam("postfix").gr_gid
    for name in ("domains.cf", "new.cf"):
        info = (scratch.postfix / "mailadmin" / name).stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, postfix_gid, 0o640)
    assert (scratch.postfix / "main.cf").stat().st_mode & 0o777 == 0o644
    # Only the files it replaced are in the backup, with their old content.
    kept = scratch.backups / "postfix" / backup_id
    assert (kept / "main.cf").read_text() == OLD_MAIN
    assert (kept / "mailadmin" / "domains.cf").read_text() == OLD_MAP
    assert not (kept / "master.cf").exists()
    # No temp files left beside the live ones.
    assert sorted(p.name for p in scratch.postfix.rglob(".*")) == []


@pytest.mark.processes
def test_a_second_install_of_the_same_files_changes_nothing(scratch):
    staged = scratch.stage("run1", NEW_POSTFIX)
    assert scratch.helper("install", "postfix", str(staged)).returncode == 0

    done = scratch.helper("install", "postfix", str(staged))

    assert (done.returncode, done.stdout) == (0, "unchanged\n")
    assert len(backups(scratch)) == 1


@pytest.mark.processes
def test_restore_puts_the_old_files_back_and_removes_added_ones(scratch):
    staged = scratch.stage("run1", NEW_POSTFIX)
    install = scratch.helper("install", "postfix", str(staged))
    backup_id = install.stdout.split()[1]

    done = scratch.helper("restore", "postfix", backup_id)

    assert done.returncode == 0, done.stderr
    assert (scratch.postfix / "main.cf").read_text() == OLD_MAIN
    assert (scratch.postfix / "mailadmin" / "domains.cf").read_text() == OLD_MAP
    assert not (scratch.postfix / "mailadmin" / "new.cf").exists()
    info = (scratch.postfix / "mailadmin" / "domains.cf").stat()
    assert (info.st_gid, info.st_mode & 0o777) == (grp.getgrnam("postfix").gr_gid, 0o640)
    assert "removed mailadmin/new.cf" in done.stdout


@pytest.mark.processes
def test_installed_files_are_dated_back_and_copies_keep_their_mtime(scratch):
    # Postfix rereads a main.cf changed within the last second in 300 ms pauses:
    # `postfix reload` right after an install would wait for it.
    long_ago = time.time_ns() - 3600 * 10**9
    os.utime(scratch.postfix / "main.cf", ns=(long_ago, long_ago))
    staged = scratch.stage("run1", NEW_POSTFIX)

    backup_id = scratch.helper("install", "postfix", str(staged)).stdout.split()[1]

    now = time.time()
    for path in (scratch.postfix / "main.cf", scratch.postfix / "mailadmin" / "new.cf"):
        assert now - 60 < path.stat().st_mtime <= now - 4
    assert (scratch.backups / "postfix" / backup_id / "main.cf").stat().st_mtime_ns == long_ago
    assert scratch.helper("restore", "postfix", backup_id).returncode == 0
    assert (scratch.postfix / "main.cf").stat().st_mtime_ns == long_ago


@pytest.mark.processes
def test_only_the_newest_backups_are_kept(scratch):
    for n in range(5):
        staged = scratch.stage(f"run{n}", {"postfix/main.cf": f"# version {n}\n"})
        assert scratch.helper("install", "postfix", str(staged)).returncode == 0
    kept = backups(scratch)
    assert len(kept) == 3
    assert (scratch.backups / "postfix" / kept[-1] / "main.cf").read_text() == "# version 3\n"


@pytest.mark.processes
def test_dovecot_files_install_with_their_defaults(scratch):
    staged = scratch.stage("run1", {"dovecot/conf.d/90-mailadmin.conf": "# panel\n",
                                    "dovecot/dovecot-sql.conf.ext": "connect = x\n"})
    done = scratch.helper("install", "dovecot", str(staged))
    assert done.returncode == 0, done.stderr
    info = (scratch.dovecot / "dovecot-sql.conf.ext").stat()
    assert (info.st_gid, info.st_mode & 0o777) == (grp.getgrnam("dovecot").gr_gid, 0o640)
    assert (scratch.dovecot / "conf.d" / "90-mailadmin.conf").stat().st_mode & 0o777 == 0o644


# ---------------------------------------------------------------- refusals


def refused(done: subprocess.CompletedProcess[str], words: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1, done.stderr
    assert words in done.stderr, done.stderr


@pytest.mark.processes
@pytest.mark.parametrize(("args", "words"), [
    (["bogus"], "unknown verb 'bogus'"),
    (["install", "exim", "{staged}"], "unknown daemon 'exim'"),
    (["install", "postfix"], "install takes 2 argument(s)"),
    (["install", "postfix", "{root}/elsewhere"], "is not under"),
    (["install", "postfix", "{staging}"], "is not under"),
    (["install", "postfix", "{staging}/../elsewhere"], "without '..'"),
    (["install", "postfix", "staging/good"], "must be an absolute path"),
    (["restore", "postfix", "../../etc"], "is not a backup id"),
    (["restore", "postfix", "20260101T000000.000000Z"], "no postfix backup"),
    (["flush-auth-cache", "-bob@example.org"], "is not a mailbox address"),
    (["flush-auth-cache", "bob@example.org other@example.org"], "is not a mailbox address"),
    (["flush-auth-cache", "bob"], "is not a mailbox address"),
    (["flush-auth-cache", "b\nob@example.org"], "is not a mailbox address"),
    (["flush-auth-cache", "x" * 65 + "@example.org"], "is not a mailbox address"),
    (["remove-maildir", "{root}/elsewhere/example.org/bob"], "is not"),
    (["remove-maildir", "{vmail}/example.org"], "is not"),
    (["remove-maildir", "{vmail}/example.org/bob/Maildir"], "is not"),
    (["remove-maildir", "{vmail}/example.org/../bob"], "is not"),
    (["remove-maildir", "{vmail}/nowhere.example/bob"], "does not exist"),
])
def test_requests_outside_the_allow_list_are_refused(scratch, args, words):
    (scratch.root / "elsewhere").mkdir()
    scratch.stage("good", {"postfix/main.cf": "# fine\n"})
    (scratch.vmail / "example.org" / "bob").mkdir(parents=True)
    values = {"staged": str(scratch.staging / "good"), "root": str(scratch.root),
              "staging": str(scratch.staging), "vmail": str(scratch.vmail)}
    refused(scratch.helper(*[a.format(**values) for a in args]), words)
    assert (scratch.postfix / "main.cf").read_text() == OLD_MAIN
    assert (scratch.vmail / "example.org" / "bob").is_dir()


@pytest.mark.processes
@pytest.mark.parametrize(("files", "words"), [
    ({"postfix/main.cf": "x\n", "postfix/evil.cf": "x\n"}, "evil.cf is not a file the panel"),
    ({"postfix/mailadmin/sub/x.cf": "x\n"}, "mailadmin/sub/x.cf is not a file the panel"),
    ({"postfix/mailadmin/x.map": "x\n"}, "mailadmin/x.map is not a file the panel"),
    ({"postfix/conf.d/90-mailadmin.conf": "x\n"}, "is not a file the panel"),
])
def test_a_staged_file_outside_the_allow_list_refuses_the_whole_install(scratch, files, words):
    staged = scratch.stage("run1", files)
    refused(scratch.helper("install", "postfix", str(staged)), words)
    assert (scratch.postfix / "main.cf").read_text() == OLD_MAIN
    assert backups(scratch) == []


@pytest.mark.processes
def test_symlinks_in_or_to_the_staged_tree_are_refused(scratch):
    staged = scratch.stage("run1", {"postfix/main.cf": "# new\n"})
    (staged / "postfix" / "master.cf").symlink_to("/etc/shadow")
    refused(scratch.helper("install", "postfix", str(staged)), "master.cf is a symlink")
    refused(scratch.helper("check", "postfix", str(staged)), "master.cf is a symlink")

    (staged / "postfix" / "master.cf").unlink()
    (staged / "postfix" / "mailadmin").symlink_to(scratch.postfix / "mailadmin")
    refused(scratch.helper("install", "postfix", str(staged)), "mailadmin is a symlink")

    # A link from inside the staging root to a tree outside it resolves outside.
    (scratch.root / "outside" / "postfix").mkdir(parents=True)
    (scratch.root / "outside" / "postfix" / "main.cf").write_text("# sneaked\n")
    (scratch.staging / "link").symlink_to(scratch.root / "outside")
    refused(scratch.helper("install", "postfix", str(scratch.staging / "link")), "is not under")
    assert (scratch.postfix / "main.cf").read_text() == OLD_MAIN


@pytest.mark.processes
def test_a_symlinked_staging_root_or_daemon_directory_is_refused(scratch):
    """The staging root's parent and the staged tree belong to the panel's user."""
    staged = scratch.stage("run1", {"postfix/main.cf": "# new\n"})
    (scratch.root / "run2").mkdir()
    (scratch.root / "run2" / "postfix").symlink_to(staged / "postfix")
    scratch.configure(staging_root=str(scratch.root))
    refused(scratch.helper("install", "postfix", str(scratch.root / "run2")),
            "postfix is a symlink")
    (scratch.root / "staging-link").symlink_to(scratch.root)
    scratch.configure(staging_root=str(scratch.root / "staging-link"))
    refused(scratch.helper("install", "postfix", str(scratch.root / "staging-link" / "run1")),
            "must not be a symlink")
    assert (scratch.postfix / "main.cf").read_text() == OLD_MAIN


@pytest.mark.processes
def test_a_replaced_secret_file_is_never_left_world_readable(scratch):
    secret = scratch.postfix / "mailadmin" / "domains.cf"
    secret.chmod(0o644)  # as an admin may have left it
    staged = scratch.stage("run1", {"postfix/mailadmin/domains.cf": "# new domains map\n"})

    done = scratch.helper("install", "postfix", str(staged))

    assert done.returncode == 0, done.stderr
    info = secret.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (
        0o640, 0, grp.getgrnam("postfix").gr_gid)


@pytest.mark.processes
@pytest.mark.parametrize(("relative", "content", "message"), [
    ("postfix/main.cf", "daemon_directory = /tmp/evil\n", "daemon_directory may not be set"),
    ("postfix/main.cf", "import_environment = LD_PRELOAD=/tmp/x.so\n",
     "import_environment may not be set"),
    ("postfix/master.cf", "evil unix - n n - - /tmp/evil\n", "is not one of Postfix's own"),
    ("postfix/master.cf", "smtp inet n - n - - smtpd\n  -o daemon_directory=/tmp\n",
     "daemon_directory may not be set"),
    ("dovecot/conf.d/90-mailadmin.conf", "service x {\n  executable = /tmp/evil\n}\n",
     "executable may not be set"),
    ("dovecot/conf.d/90-mailadmin.conf", "!include /tmp/evil.conf\n", "includes are not"),
    ("dovecot/dovecot-sql.conf.ext", "connect = </etc/shadow\n", "read from files"),
    ("rspamd/local.d/milter_headers.conf", '.include "/tmp/evil.conf"\n', "Lua are not"),
])
def test_a_staged_file_that_would_run_code_as_root_is_refused(scratch, relative, content,
                                                               message):
    """Names alone are not enough: the staged tree is the panel's user's."""
    daemon = relative.split("/", 1)[0]
    staged = scratch.stage("run1", {relative: content})
    scratch.configure(rspamd_dir=str(scratch.root / "etc-rspamd" / "local.d"))
    for verb in ("check", "install"):
        refused(scratch.helper(verb, daemon, str(staged)), message)
    assert backups(scratch, daemon) == []


@pytest.mark.processes
def test_conf_is_refused_under_sudo(scratch):
    staged = scratch.stage("run1", {"postfix/main.cf": "# new\n"})
    for variable in ("SUDO_USER", "SUDO_UID"):
        done = scratch.helper("install", "postfix", str(staged), env={variable: "1000"})
        refused(done, "--conf is refused under sudo")
    assert (scratch.postfix / "main.cf").read_text() == OLD_MAIN


# ---------------------------------------------------------------- checks on real daemons


@pytest.fixture
def rendered(scratch, settings, tmp_path, db):
    """The panel's real render for this host, written into a staging directory, with
    the paths inside it naming the scratch tree the helper installs into."""
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("checked only for existing\n")
    settings.MAILADMIN_TLS_CERT = str(tmp_path / "cert.pem")
    settings.MAILADMIN_TLS_KEY = str(tmp_path / "key.pem")
    settings.MAILADMIN_POSTFIX_DIR = str(scratch.postfix)
    settings.MAILADMIN_DOVECOT_DIR = str(scratch.dovecot)
    host = MailHost.current()
    files = render.render(render.RenderOptions(host=host, database=render.daemon_database(host)))
    staged = scratch.staging / "rendered"
    render.write_tree(files, staged)
    return staged


@pytest.mark.processes
def test_check_postfix_passes_a_rendered_tree_and_names_what_breaks_it(scratch, rendered):
    done = scratch.helper("check", "postfix", str(rendered))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("postfix check: ok")

    with (rendered / "postfix" / "main.cf").open("a") as handle:
        handle.write("smtpd_bogus_parameter = 1\n")
    # A name the helper does not know is refused before any checker runs...
    refused(scratch.helper("check", "postfix", str(rendered)),
            "setting 'smtpd_bogus_parameter' is not one the helper allows")
    # ...and one root allowed (helper.conf) still meets Postfix's own judgement.
    scratch.configure(allow_postfix="smtpd_bogus_parameter")
    done = scratch.helper("check", "postfix", str(rendered))
    assert done.returncode == 1
    assert "unused parameter: smtpd_bogus_parameter=1" in done.stderr
    assert done.stderr.count("\n") == 1
    # A check installs nothing.
    assert (scratch.postfix / "main.cf").read_text() == OLD_MAIN


@pytest.mark.processes
def test_check_postfix_reads_a_copy_dated_back(scratch, rendered):
    # A fresh main.cf would cost `postfix check` 1.5-2 s of Postfix's pauses.
    ages = scratch.root / "ages"
    fake = scratch.root / "postfix"
    fake.write_text(f'#!/bin/sh\necho $(( $(date +%s) - $(stat -c %Y "$2/main.cf") )) > {ages}\n')
    fake.chmod(0o755)
    scratch.configure(postfix_bin=str(fake))

    done = scratch.helper("check", "postfix", str(rendered))

    assert done.returncode == 0, done.stderr
    assert int(ages.read_text()) >= 4


@pytest.mark.processes
def test_check_postfix_takes_a_setting_naming_the_error_transport(scratch, rendered):
    # `postconf -n` prints the setting back; its value is no diagnostic.
    with (rendered / "postfix" / "main.cf").open("a") as handle:
        handle.write("default_transport = error:no outside delivery\n")
    done = scratch.helper("check", "postfix", str(rendered))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("postfix check: ok")


@pytest.mark.processes
def test_check_postfix_refuses_a_broken_master_cf(scratch, rendered):
    with (rendered / "postfix" / "master.cf").open("a") as handle:
        handle.write("bogus unix - n\n")
    last = len((rendered / "postfix" / "master.cf").read_text().splitlines())
    refused(scratch.helper("check", "postfix", str(rendered)),
            f"master.cf line {last}: a service needs 8 fields")
    text = (rendered / "postfix" / "master.cf").read_text().replace(
        "bogus unix - n\n", "bogus unix - n n - nine smtpd\n")
    (rendered / "postfix" / "master.cf").write_text(text)
    done = scratch.helper("check", "postfix", str(rendered))
    assert done.returncode == 1
    assert "invalid process_limit field \"nine\"" in done.stderr, done.stderr


@pytest.mark.processes
def test_check_dovecot_checks_the_staged_files_inside_the_live_configuration(
        scratch, rendered):
    if not Path("/etc/dovecot/dovecot.conf").exists():
        pytest.skip("needs Debian's dovecot-core")
    shutil.rmtree(scratch.dovecot)
    shutil.copytree("/etc/dovecot", scratch.dovecot, symlinks=True,
                    ignore=shutil.ignore_patterns("private"))
    done = scratch.helper("check", "dovecot", str(rendered))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("dovecot check: ok")

    with (rendered / "dovecot" / "conf.d" / "90-mailadmin.conf").open("a") as handle:
        handle.write("bogus_setting = 1\n")
    refused(scratch.helper("check", "dovecot", str(rendered)),
            "setting 'bogus_setting' is not one the helper allows")
    scratch.configure(allow_dovecot="bogus_setting")
    done = scratch.helper("check", "dovecot", str(rendered))
    assert done.returncode == 1
    assert "Unknown setting: bogus_setting" in done.stderr
    # The message names the live path, not the helper's scratch copy.
    assert f"{scratch.dovecot}/conf.d/90-mailadmin.conf" in done.stderr


@pytest.fixture
def live_rspamd(scratch) -> Path:
    """A copy of Debian's /etc/rspamd as the helper's live Rspamd configuration."""
    if not Path("/etc/rspamd/rspamd.conf").exists():
        if os.environ.get("CI"):
            pytest.fail("needs Debian's rspamd (bin/test installs it)")
        pytest.skip("needs Debian's rspamd")
    live = scratch.root / "etc-rspamd"
    shutil.copytree("/etc/rspamd", live, symlinks=True)
    scratch.configure(rspamd_dir=str(live / "local.d"))
    return live


def render_rspamd(staged: Path) -> None:
    host = MailHost.current()
    files = render.render(render.RenderOptions(
        host=host, database=render.daemon_database(host), with_rspamd=True))
    render.write_tree({k: v for k, v in files.items() if k.startswith("rspamd/")}, staged)


@pytest.mark.processes
def test_check_rspamd_passes_the_rendered_local_d_and_names_what_breaks_it(
        scratch, rendered, live_rspamd):
    render_rspamd(rendered)
    assert (rendered / "rspamd" / "local.d" / "worker-proxy.inc").is_file()
    done = scratch.helper("check", "rspamd", str(rendered))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "rspamd check: syntax OK\n"

    with (rendered / "rspamd" / "local.d" / "worker-proxy.inc").open("a") as handle:
        handle.write("{\n")
    done = scratch.helper("check", "rspamd", str(rendered))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "ucl parser error" in done.stderr
    # The message names the live path, not the helper's scratch copy.
    assert f"{live_rspamd}/local.d/worker-proxy.inc" in done.stderr
    assert not (live_rspamd / "local.d" / "worker-proxy.inc").exists()


@pytest.mark.processes
@pytest.mark.parametrize("name", ["x.lua", "sub/x.conf", "x.inc.bak", ".x.conf"])
def test_an_rspamd_file_outside_the_allow_list_is_refused(scratch, live_rspamd, name):
    staged = scratch.stage("run1", {"rspamd/local.d/worker-proxy.inc": "milter = yes;\n",
                                    f"rspamd/local.d/{name}": "x = 1;\n"})
    refused(scratch.helper("install", "rspamd", str(staged)), "is not a file the panel")
    assert not (live_rspamd / "local.d" / "worker-proxy.inc").exists()


@pytest.mark.processes
def test_check_without_a_staged_tree_for_the_daemon_is_refused(scratch):
    staged = scratch.stage("run1", {"postfix/main.cf": "# new\n"})
    refused(scratch.helper("check", "rspamd", str(staged)), "no staged rspamd tree")


# ---------------------------------------------------------------- reload, flush, maildirs


def stand_in(s: Scratch, name: str, status: int = 0) -> Path:
    """A binary that records its arguments in NAME.args and prints a line."""
    path = s.root / name
    path.write_text(f'#!/bin/sh\necho "$@" > {path}.args\necho "{name} said hello"\n'
                    f"exit {status}\n")
    path.chmod(0o755)
    return path


@pytest.mark.processes
def test_reload_reloads_and_never_restarts(scratch):
    scratch.configure(postfix_bin=str(stand_in(scratch, "postfix")),
                      doveadm_bin=str(stand_in(scratch, "doveadm")))
    assert scratch.helper("reload", "postfix").returncode == 0
    assert (scratch.root / "postfix.args").read_text() == f"-c {scratch.postfix} reload\n"
    assert scratch.helper("reload", "dovecot").returncode == 0
    assert (scratch.root / "doveadm.args").read_text() == (
        f"-c {scratch.dovecot}/dovecot.conf reload\n")


@pytest.mark.processes
def test_a_failed_reload_exits_1_with_the_daemons_message(scratch):
    scratch.configure(postfix_bin=str(stand_in(scratch, "postfix", status=1)))
    done = scratch.helper("reload", "postfix")
    assert (done.returncode, done.stderr) == (
        1, "mailadmin-helper: postfix reload: postfix said hello\n")


@pytest.mark.processes
def test_reload_starts_a_postfix_whose_master_is_gone(scratch):
    # A reload whose master.cf names a port already taken ends the master
    # (fatal bind): the rollback's reload after restoring must bring it back.
    calls = scratch.root / "postfix.calls"
    fake = scratch.root / "postfix"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n'
                    'for last in "$@"; do :; done\n'
                    'case "$last" in start) exit 0;; *) echo "not running"; exit 1;; esac\n')
    fake.chmod(0o755)
    scratch.configure(postfix_bin=str(fake))

    done = scratch.helper("reload", "postfix")

    assert (done.returncode, done.stdout) == (0, "postfix was not running: started\n")
    assert calls.read_text().splitlines() == [
        f"-c {scratch.postfix} reload", f"-c {scratch.postfix} status",
        f"-c {scratch.postfix} start"]


@pytest.mark.processes
def test_flush_auth_cache_passes_the_one_address(scratch):
    scratch.configure(doveadm_bin=str(stand_in(scratch, "doveadm")))
    done = scratch.helper("flush-auth-cache", "o'brien@example.org")
    assert done.returncode == 0, done.stderr
    assert (scratch.root / "doveadm.args").read_text() == (
        f"-c {scratch.dovecot}/dovecot.conf auth cache flush o'brien@example.org\n")


@pytest.mark.processes
def test_flush_auth_cache_takes_up_to_100_addresses_in_one_doveadm_run(scratch):
    scratch.configure(doveadm_bin=str(stand_in(scratch, "doveadm")))
    addresses = [f"user{n}@example.org" for n in range(100)]
    done = scratch.helper("flush-auth-cache", *addresses)
    assert done.returncode == 0, done.stderr
    assert (scratch.root / "doveadm.args").read_text() == (
        f"-c {scratch.dovecot}/dovecot.conf auth cache flush {' '.join(addresses)}\n")
    refused(scratch.helper("flush-auth-cache", *addresses, "one@example.org"),
            "flush-auth-cache takes 1 to 100 arguments")
    refused(scratch.helper("flush-auth-cache"), "flush-auth-cache takes 1 to 100 arguments")
    # One bad address refuses the whole request: nothing is flushed.
    (scratch.root / "doveadm.args").unlink()
    refused(scratch.helper("flush-auth-cache", "ok@example.org", "-x@example.org"),
            "'-x@example.org' is not a mailbox address")
    assert not (scratch.root / "doveadm.args").exists()


@pytest.fixture
def open_vmail(scratch):
    """A vmail directory the vmail user (`nobody` here) can reach: tmp_path is root's 0700."""
    vmail = Path(tempfile.mkdtemp(prefix="mailadmin-vmail-"))
    vmail.chmod(0o755)
    scratch.configure(vmail_dir=str(vmail))
    yield vmail
    shutil.rmtree(vmail)


@pytest.mark.processes
def test_remove_maildir_removes_as_the_vmail_user(scratch, open_vmail):
    maildir = open_vmail / "example.org" / "bob"
    (maildir / "cur").mkdir(parents=True)
    (maildir / "cur" / "1.mail").write_text("hello\n")
    for path in (open_vmail / "example.org", maildir, maildir / "cur", maildir / "cur" / "1.mail"):
        os.chown(path, 65534, 65534)

    done = scratch.helper("remove-maildir", str(maildir))

    assert done.returncode == 0, done.stderr
    assert not maildir.exists()
    assert (open_vmail / "example.org").is_dir()


@pytest.mark.processes
def test_remove_maildir_of_a_maildir_already_gone_says_absent(scratch, open_vmail):
    """The agent's record of a removal may be lost after the helper ran (the database
    gone before the commit): the task's retry must find the job done, not refused for
    ever (the row would stay open, its error shown, every sweep failing again)."""
    (open_vmail / "example.org").mkdir()
    done = scratch.helper("remove-maildir", str(open_vmail / "example.org" / "nobody-here"))

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("absent ")


@pytest.mark.processes
def test_remove_maildir_never_deletes_as_root(scratch, open_vmail):
    """A directory only root may change stays: the removal did not run as root."""
    maildir = open_vmail / "example.org" / "bob"
    (maildir / "rootonly").mkdir(parents=True)
    (maildir / "rootonly" / "file").write_text("kept\n")
    os.chown(maildir, 65534, 65534)

    done = scratch.helper("remove-maildir", str(maildir))

    assert done.returncode == 1
    assert "Permission denied" in done.stderr
    assert (maildir / "rootonly" / "file").exists()


@pytest.mark.processes
def test_remove_maildir_refuses_a_symlinked_domain(scratch, open_vmail):
    (scratch.root / "elsewhere" / "bob").mkdir(parents=True)
    (open_vmail / "example.org").symlink_to(scratch.root / "elsewhere")
    refused(scratch.helper("remove-maildir", str(open_vmail / "example.org" / "bob")),
            "symlinks are refused")
    assert (scratch.root / "elsewhere" / "bob").is_dir()


# ---------------------------------------------------------------- sudoers and the wrapper


@pytest.mark.processes
def test_the_sudoers_file_parses_and_allows_only_the_agent_the_helper():
    if shutil.which("visudo") is None:
        pytest.skip("needs visudo (Debian's sudo package)")
    done = subprocess.run(["visudo", "-cf", str(SUDOERS)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rules = [line for line in SUDOERS.read_text().splitlines()
             if line.strip() and not line.startswith(("#", "Defaults"))]
    assert rules == ["mailadmin-agent ALL=(root) NOPASSWD: /usr/local/libexec/mailadmin-helper"]
    # The panel's user (gunicorn, the worker, beat) has no rule: host work goes to the
    # agent's queue, so the web never needs root.
    assert not [rule for rule in rules if rule.split()[0] in ("mailadmin", "%mailadmin")]


@pytest.fixture
def helper_command(scratch, settings):
    settings.MAILADMIN_HELPER_COMMAND = [str(HELPER), "--conf", str(scratch.conf)]
    return scratch


@pytest.mark.processes
def test_run_helper_returns_what_the_helper_printed(helper_command):
    staged = helper_command.stage("run1", {"postfix/main.cf": "# new\n"})
    out = privileged.run_helper("install", "postfix", str(staged))
    assert out.startswith("backup ") and out.endswith("changed main.cf\n")


@pytest.mark.processes
def test_run_helper_raises_the_helpers_one_line_message(helper_command):
    with pytest.raises(privileged.HelperError) as refusal:
        privileged.run_helper("flush-auth-cache", "not an address")
    assert str(refusal.value) == "refused: 'not an address' is not a mailbox address"


@pytest.mark.processes
def test_run_helper_says_when_the_helper_cannot_be_run(settings):
    settings.MAILADMIN_HELPER_COMMAND = ["/nonexistent/mailadmin-helper"]
    with pytest.raises(privileged.HelperError, match="cannot be run"):
        privileged.run_helper("reload", "postfix")


def test_the_default_command_goes_through_sudo_without_a_password():
    from mailadmin import settings as defaults

    assert defaults.MAILADMIN_HELPER_COMMAND[:2] == ["sudo", "-n"] or os.environ.get(
        "MAILADMIN_HELPER_COMMAND")


# ---------------------------------------------------------------- no half-done state

# Runs the helper's main() in a process of its own after the test's patch
# (argv[2], Python) has been applied to the loaded module.
RUNNER = """
import importlib.machinery, importlib.util, os, sys, time
loader = importlib.machinery.SourceFileLoader("mailadmin_helper", sys.argv[1])
spec = importlib.util.spec_from_loader("mailadmin_helper", loader)
helper = importlib.util.module_from_spec(spec)
sys.modules["mailadmin_helper"] = helper
loader.exec_module(helper)
exec(sys.argv[2])
sys.exit(helper.main(sys.argv[3:]))
"""


def patched_helper(s: Scratch, patch: str, *args: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
    return subprocess.Popen([sys.executable, "-c", RUNNER, str(HELPER), patch,
                             "--conf", str(s.conf), *args], env=clean, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def live_postfix(s: Scratch) -> dict[str, str]:
    return {str(p.relative_to(s.postfix)): p.read_text()
            for p in sorted(s.postfix.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("failing_rename", [1, 2, 3])
def test_a_swap_that_fails_part_way_is_put_back_from_the_backup(
        scratch, monkeypatch, failing_rename):
    """NEW_POSTFIX changes mailadmin/domains.cf (replaced), mailadmin/new.cf (created)
    and main.cf (replaced), swapped in that order: whichever rename fails, the
    helper itself puts back those before it and names the backup."""
    helper = load_helper()
    conf = helper.load_conf(str(scratch.conf), trusted_path=False)
    staged = scratch.stage("run1", NEW_POSTFIX)
    before = live_postfix(scratch)
    real_replace = os.replace
    live_renames: list[str] = []

    def replace(src: str, dst: str) -> None:
        if str(dst).startswith(f"{scratch.postfix}/"):
            live_renames.append(str(dst))
            if len(live_renames) == failing_rename:
                raise OSError(errno.EIO, "Input/output error", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(helper.os, "replace", replace)
    with pytest.raises(helper.Failed) as failure:
        helper.verb_install(conf, "postfix", str(staged))

    [backup_id] = backups(scratch)
    message = str(failure.value)
    assert message.startswith("install postfix: Input/output error (")
    assert f"the {failing_rename - 1} file(s) already swapped were put back from backup " \
           f"{backup_id}" in message
    assert live_postfix(scratch) == before
    secret = (scratch.postfix / "mailadmin" / "domains.cf").stat()
    assert (secret.st_uid, secret.st_gid, stat.S_IMODE(secret.st_mode)) == (
        0, grp.getgrnam("postfix").gr_gid, 0o640)
    assert sorted(p.name for p in scratch.postfix.rglob(".*")) == []


def test_a_swap_whose_undoing_fails_too_says_how_to_restore(scratch, monkeypatch):
    helper = load_helper()
    conf = helper.load_conf(str(scratch.conf), trusted_path=False)
    staged = scratch.stage("run1", NEW_POSTFIX)
    real_replace = os.replace
    live_renames: list[str] = []

    def replace(src: str, dst: str) -> None:
        if str(dst).startswith(f"{scratch.postfix}/"):
            live_renames.append(str(dst))
            if len(live_renames) >= 3:
                raise OSError(errno.EIO, "Input/output error", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(helper.os, "replace", replace)
    with pytest.raises(helper.Failed) as failure:
        helper.verb_install(conf, "postfix", str(staged))
    [backup_id] = backups(scratch)
    assert f"run `mailadmin-helper restore postfix {backup_id}`" in str(failure.value)

    monkeypatch.setattr(helper.os, "replace", real_replace)
    helper.verb_restore(conf, "postfix", backup_id)
    assert (scratch.postfix / "mailadmin" / "domains.cf").read_text() == OLD_MAP
    assert not (scratch.postfix / "mailadmin" / "new.cf").exists()


@pytest.mark.processes
def test_reload_waits_for_an_install_or_restore_of_the_same_daemon(scratch):
    scratch.configure(postfix_bin=str(stand_in(scratch, "postfix")))
    (scratch.backups / "postfix").mkdir(parents=True)
    fd = os.open(scratch.backups / "postfix" / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as an install in the middle of its swap
        process = patched_helper(scratch, "", "reload", "postfix")
        time.sleep(1.5)
        assert process.poll() is None
        assert not (scratch.root / "postfix.args").exists()
    finally:
        os.close(fd)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert (scratch.root / "postfix.args").read_text().endswith("reload\n")


SLOW_SWAP = """
real_replace = os.replace
def slow_swap(pending, swapped=None):
    open(os.environ["SWAP_STARTED"], "w").close()
    for tmp, path in pending:
        time.sleep(0.5)
        real_replace(tmp, path)
        if swapped is not None:
            swapped.append(path)
helper.swap = slow_swap
"""


@pytest.mark.processes
def test_sigterm_during_the_swap_waits_until_the_tree_is_whole(scratch, monkeypatch):
    staged = scratch.stage("run1", NEW_POSTFIX)
    started = scratch.root / "swap-started"
    monkeypatch.setenv("SWAP_STARTED", str(started))
    process = patched_helper(scratch, SLOW_SWAP, "install", "postfix", str(staged))
    deadline = time.monotonic() + 20
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # about 1.5 s of renames still to go

    _out, err = process.communicate(timeout=30)

    assert (process.returncode, err) == (1, "mailadmin-helper: stopped by SIGTERM\n")
    # Every changed file is new: the signal waited for the swap.
    assert live_postfix(scratch) == {
        "main.cf": "# new main.cf\n", "master.cf": OLD_MASTER,
        "mailadmin/domains.cf": "# new domains map\n", "mailadmin/new.cf": "# a new map\n"}
    assert sorted(p.name for p in scratch.postfix.rglob(".*")) == []


@pytest.mark.processes
def test_the_helper_gives_up_at_its_own_deadline_with_one_line(scratch):
    slow = scratch.root / "postfix"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    scratch.configure(postfix_bin=str(slow))
    began = time.monotonic()
    process = patched_helper(scratch, "helper.DEADLINE_SECONDS = 1", "reload", "postfix")
    _out, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (
        1, "mailadmin-helper: gave up: not done within its deadline of 1 s\n")
    assert time.monotonic() - began < 10


def test_the_helpers_deadline_comes_before_the_callers_timeout():
    helper = load_helper()
    assert helper.DEADLINE_SECONDS < privileged.TIMEOUT_SECONDS


@pytest.mark.processes
def test_run_helper_stops_a_helper_past_its_time_with_sigterm_first(
        settings, tmp_path, monkeypatch):
    got = tmp_path / "got"
    fake = tmp_path / "helper"
    fake.write_text(f"#!/bin/sh\ntrap 'echo TERM > {got}; exit 143' TERM\n"
                    "sleep 30 &\nwait\n")
    fake.chmod(0o755)
    settings.MAILADMIN_HELPER_COMMAND = [str(fake)]
    monkeypatch.setattr(privileged, "TIMEOUT_SECONDS", 1)
    monkeypatch.setattr(privileged, "GRACE_SECONDS", 5)
    with pytest.raises(privileged.HelperError) as failure:
        privileged.run_helper("reload", "postfix")
    assert str(failure.value) == (
        "the root helper did not answer reload within 1 s (stopped with SIGTERM)")
    assert got.read_text() == "TERM\n"


@pytest.mark.processes
def test_run_helper_kills_a_helper_that_ignores_sigterm(settings, tmp_path, monkeypatch):
    fake = tmp_path / "helper"
    fake.write_text("#!/usr/bin/python3\nimport signal, time\n"
                    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(30)\n")
    fake.chmod(0o755)
    settings.MAILADMIN_HELPER_COMMAND = [str(fake)]
    monkeypatch.setattr(privileged, "TIMEOUT_SECONDS", 1)
    monkeypatch.setattr(privileged, "GRACE_SECONDS", 1)
    began = time.monotonic()
    with pytest.raises(privileged.HelperError) as failure:
        privileged.run_helper("reload", "postfix")
    assert str(failure.value) == ("the root helper did not answer reload within 1 s "
                                  "(killed: it did not end within 1 s of SIGTERM)")
    assert time.monotonic() - began < 10


def test_a_restore_whose_swap_fails_part_way_leaves_the_files_as_before_it(
        scratch, monkeypatch):
    helper = load_helper()
    conf = helper.load_conf(str(scratch.conf), trusted_path=False)
    staged = scratch.stage("run1", NEW_POSTFIX)
    backup_id = helper.verb_install(conf, "postfix", str(staged)).split()[1]
    installed = live_postfix(scratch)
    real_replace = os.replace
    live_renames: list[str] = []

    def replace(src: str, dst: str) -> None:
        if str(dst).startswith(f"{scratch.postfix}/"):
            live_renames.append(str(dst))
            if len(live_renames) == 2:
                raise OSError(errno.EIO, "Input/output error", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(helper.os, "replace", replace)
    with pytest.raises(helper.Failed) as failure:
        helper.verb_restore(conf, "postfix", backup_id)
    assert str(failure.value).startswith(f"restore postfix backup {backup_id}: Input/output")
    assert str(failure.value).endswith(
        "the 1 file(s) already restored were put back, the live files are as before the restore")
    assert live_postfix(scratch) == installed
    assert sorted(p.name for p in scratch.postfix.rglob(".*")) == []
