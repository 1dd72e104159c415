"""The privilege split with real users and the real sudo.

Production runs the panel (gunicorn) as `mailadmin` and the agent (Celery on
the host's queue) as `mailadmin-agent`, and only the agent's user may run the
root helper through sudo (deploy/sudoers/mailadmin). This proves it on this
machine, as root, without touching /etc/mailadmin or any daemon:

- two throwaway system users with unique names (a web one and an agent one);
- a copy of the helper at a root-owned scratch path, its CONF_PATH rewritten to a
  root-owned scratch helper.conf whose directories are scratch ones and whose
  postfix binary is a stand-in that records who ran it;
- a sudoers drop-in /etc/sudoers.d/<unique> that names only the agent's user and
  that copy, checked with `visudo -cf` before it is put in place.

Everything is removed at the end, even when a test fails. Not on /etc/mailadmin
at all: the SQLite and MariaDB runs of the suite run at the same time.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "deploy" / "helper" / "mailadmin-helper"
REDIS = "redis://127.0.0.1:6379/14"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Split:
    base: Path
    web: str
    agent: str
    helper: Path
    staged: Path
    ran_as: Path  # the stand-in postfix writes the uid it ran as here
    queue: str
    logs: dict[str, Path] = field(default_factory=dict)

    def uid(self, user: str) -> int:
        return pwd.getpwnam(user).pw_uid

    def as_user(self, user: str, *argv: str, timeout: float = 60
                ) -> subprocess.CompletedProcess[str]:
        """argv run as the user alone (its own group, no supplementary groups), with
        no terminal, as a unit's process would be."""
        entry = pwd.getpwnam(user)
        return subprocess.run(list(argv), user=entry.pw_uid, group=entry.pw_gid,
                              extra_groups=[], env={"PATH": PATH, "LANG": "C.UTF-8"},
                              cwd="/", stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, start_new_session=True, check=False)

    def sudo_helper(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.as_user(user, "sudo", "-n", str(self.helper), *args)

    def start(self, user: str, name: str, argv: list[str], env: dict[str, str]
              ) -> subprocess.Popen[bytes]:
        entry = pwd.getpwnam(user)
        log = self.base / f"{name}.log"
        self.logs[name] = log
        with open(log, "wb") as out:
            return subprocess.Popen(argv, user=entry.pw_uid, group=entry.pw_gid, extra_groups=[],
                                    env={"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/nonexistent",
                                         **env},
                                    cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")[-4000:]


def _readable_by_others(path: Path) -> bool:
    """Whether a user with no group of root's can reach and read the path."""
    for part in [path, *path.parents]:
        if part.exists() and not part.stat().st_mode & 0o005:
            return False
    return True


def _system_user(name: str, stack: ExitStack) -> None:
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                    "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True, timeout=60)
    stack.callback(_remove_user, name)


def _remove_user(name: str) -> None:
    # Its processes are gone by now (the stack stops them first); userdel takes the group
    # it made too (USERGROUPS_ENAB), groupdel is for a group it left behind.
    subprocess.run(["userdel", name], capture_output=True, timeout=60, check=False)
    subprocess.run(["groupdel", name], capture_output=True, timeout=60, check=False)


def _root_file(path: Path, text: str, mode: int) -> None:
    path.write_text(text)
    os.chown(path, 0, 0)
    path.chmod(mode)


@pytest.fixture(scope="module")
def split() -> Iterator[Split]:
    if os.geteuid() != 0:
        _unavailable("runs as root: it creates system users and a sudoers drop-in")
    for binary in ("sudo", "visudo", "useradd", "userdel"):
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
            _unavailable(f"needs {binary} (Debian packages sudo and passwd)")
    if not Path("/etc/sudoers.d").is_dir() or "includedir /etc/sudoers.d" not in Path(
            "/etc/sudoers").read_text():
        _unavailable("needs sudo reading /etc/sudoers.d (Debian's stock /etc/sudoers)")
    for needed in (ROOT, Path(sysconfig.get_paths()["purelib"])):
        if not _readable_by_others(needed):
            _unavailable(f"{needed} must be readable by other users: the throwaway users "
                         "run the panel and the worker from it")
    tag = secrets.token_hex(4)
    web, agent = f"mat-web-{tag}", f"mat-agent-{tag}"
    with ExitStack() as stack:
        # Root-owned, 0755, outside pytest's 0700 tmp directory: the users must reach it.
        base = Path(tempfile.mkdtemp(prefix=f"mailadmin-split-{tag}-", dir="/var/tmp"))
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        base.chmod(0o755)
        _system_user(web, stack)
        _system_user(agent, stack)
        agent_entry = pwd.getpwnam(agent)
        for name in ("bin", "etc", "postfix", "out"):
            (base / name).mkdir(mode=0o755)
        (base / "backups").mkdir(mode=0o700)
        # The agent's staging directory: its own, 0700, as deploy/install makes it.
        staging = base / "staging"
        staging.mkdir(mode=0o700)
        os.chown(staging, agent_entry.pw_uid, agent_entry.pw_gid)
        conf = base / "etc" / "helper.conf"
        helper = base / "bin" / "mailadmin-helper"
        source = HELPER.read_text()
        copy, count = re.subn(r'^CONF_PATH = "/etc/mailadmin/helper.conf"$',
                              f'CONF_PATH = "{conf}"', source, flags=re.MULTILINE)
        assert count == 1, "the helper's CONF_PATH line moved: update this test"
        _root_file(helper, copy, 0o755)
        ran_as = base / "out" / "postfix-uid"
        _root_file(base / "bin" / "fake-postfix", f"#!/bin/sh\nid -u > {ran_as}\n", 0o755)
        _root_file(base / "postfix" / "master.cf", "# scratch master.cf\n", 0o644)
        _root_file(conf, "".join(f"{key} = {value}\n" for key, value in {
            "staging_root": staging, "backup_root": base / "backups",
            "postfix_dir": base / "postfix", "dovecot_dir": base / "dovecot",
            "rspamd_dir": base / "rspamd", "vmail_dir": base / "vmail",
            "postfix_bin": base / "bin" / "fake-postfix", "postconf_bin": "/bin/true",
            "doveconf_bin": "/bin/false", "doveadm_bin": "/bin/false",
            "rspamadm_bin": "/bin/false", "systemctl_bin": "/bin/false"}.items()), 0o644)
        # A staged tree as the agent renders it: written by the agent's user.
        staged = staging / "apply-1"
        for directory in (staged, staged / "postfix"):
            directory.mkdir(mode=0o700)
            os.chown(directory, agent_entry.pw_uid, agent_entry.pw_gid)
        main_cf = staged / "postfix" / "main.cf"
        main_cf.write_text("myhostname = mx1.example.org\n")
        os.chown(main_cf, agent_entry.pw_uid, agent_entry.pw_gid)
        main_cf.chmod(0o600)

        rule = (f"Defaults!{helper} env_reset\nDefaults!{helper} !requiretty\n"
                f"{agent} ALL=(root) NOPASSWD: {helper}\n")
        # No dot in the name: sudo's includedir skips names with one (the temporary file).
        dropin = Path("/etc/sudoers.d") / f"mailadmin-test-{tag}"
        temporary = Path("/etc/sudoers.d") / f".mailadmin-test-{tag}.tmp"
        stack.callback(temporary.unlink, missing_ok=True)
        stack.callback(dropin.unlink, missing_ok=True)
        _root_file(temporary, rule, 0o440)
        checked = subprocess.run(["visudo", "-cf", str(temporary)], capture_output=True,
                                 text=True, timeout=30, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        os.replace(temporary, dropin)
        yield Split(base=base, web=web, agent=agent, helper=helper, staged=staged,
                    ran_as=ran_as, queue=f"host.split-{tag}.test")


@pytest.fixture
def fresh(split: Split) -> Split:
    split.ran_as.unlink(missing_ok=True)
    return split


def test_the_agents_user_runs_the_helper_through_sudo(fresh: Split):
    done = fresh.sudo_helper(fresh.agent, "check", "postfix", str(fresh.staged))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("postfix check: ok")
    # The checker ran as root: the helper got root from sudo, not from this test.
    assert fresh.ran_as.read_text().strip() == "0"


def test_the_web_user_is_refused_by_sudo(fresh: Split):
    done = fresh.sudo_helper(fresh.web, "check", "postfix", str(fresh.staged))
    assert done.returncode == 1
    assert "a password is required" in done.stderr
    assert not fresh.ran_as.exists()
    # Nor can it read what the agent staged (the daemons' database password is in there).
    read = fresh.as_user(fresh.web, "cat", str(fresh.staged / "postfix" / "main.cf"))
    assert read.returncode != 0 and "Permission denied" in read.stderr


def test_outside_the_allow_list_is_refused_with_a_message(fresh: Split):
    unknown = fresh.sudo_helper(fresh.agent, "frobnicate", "postfix")
    assert unknown.returncode == 2
    assert "mailadmin-helper: refused: unknown verb 'frobnicate'" in unknown.stderr
    outside = fresh.sudo_helper(fresh.agent, "check", "postfix", "/etc")
    assert outside.returncode == 2
    assert "refused: staged directory /etc is not under" in outside.stderr
    daemon = fresh.sudo_helper(fresh.agent, "reload", "sshd")
    assert daemon.returncode == 2 and "refused: unknown daemon 'sshd'" in daemon.stderr
    assert not fresh.ran_as.exists()
    # sudo itself lets the agent's user run nothing but the helper.
    other = fresh.as_user(fresh.agent, "sudo", "-n", "/bin/cat", "/etc/shadow")
    assert other.returncode == 1 and "a password is required" in other.stderr


def test_conf_is_refused_under_sudo(fresh: Split):
    evil = fresh.base / "out" / "evil.conf"
    evil.write_text(f"staging_root = /\npostfix_bin = {fresh.base}/bin/fake-postfix\n")
    done = fresh.sudo_helper(fresh.agent, "--conf", str(evil), "check", "postfix",
                             str(fresh.staged))
    assert done.returncode == 2
    assert "refused: --conf is refused under sudo" in done.stderr
    assert not fresh.ran_as.exists()


def _uids(pid: int) -> set[int]:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    return {int(value) for value in line.split()[1:]}  # real, effective, saved, filesystem


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _interpreter() -> tuple[list[str], dict[str, str]]:
    """How a throwaway user runs Python with this venv's packages.

    The venv's own interpreter when other users can reach it; else (a venv made
    from a Python under /root, 0700) Debian's python of the same X.Y, as in
    production, with the venv's site-packages on its path: the same wheels fit.
    """
    if _readable_by_others(Path(os.path.realpath(sys.executable))):
        return [sys.executable], {}
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists():
        _unavailable(f"{os.path.realpath(sys.executable)} is not readable by other users, "
                     f"and there is no {system}")
    return [str(system)], {"PYTHONPATH": f"{ROOT}:{sysconfig.get_paths()['purelib']}"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _private_dir(split: Split, user: str, name: str) -> Path:
    entry = pwd.getpwnam(user)
    path = split.base / name
    path.mkdir(mode=0o700)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def test_the_panel_and_the_agent_run_as_their_users(split: Split):
    import redis

    try:
        redis.Redis.from_url(REDIS, socket_timeout=2).ping()
    except redis.RedisError:
        _unavailable(f"needs Redis at {REDIS}")
    python, python_env = _interpreter()
    port = _free_port()
    web_data = _private_dir(split, split.web, "web-data")
    agent_data = _private_dir(split, split.agent, "agent-data")
    common = {"MAILADMIN_SECRET_KEY": secrets.token_urlsafe(50),
              "MAILADMIN_ALLOWED_HOSTS": "127.0.0.1",
              "MAILADMIN_CELERY_BROKER_URL": REDIS, **python_env}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # As production lays the environments out: the panel names no helper, the agent
        # the sudo line and its own staging directory.
        web = split.start(split.web, "gunicorn", [
            *python, "-m", "gunicorn", "mailadmin.wsgi", "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "--timeout", "60"], {
            **common, "MAILADMIN_DATA_DIR": str(web_data),
            "MAILADMIN_DATABASE_URL": f"sqlite:///{web_data}/db.sqlite3",
            "MAILADMIN_HELPER_COMMAND": "none"})
        processes.append(web)
        agent = split.start(split.agent, "celery", [
            *python, "-m", "celery", "-A", "mailadmin", "worker", "--loglevel=INFO",
            "--concurrency=1", "--pool=solo", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "--hostname", f"{split.queue}@%h", "-Q", split.queue], {
            **common, "MAILADMIN_DATA_DIR": str(agent_data),
            "MAILADMIN_DATABASE_URL": f"sqlite:///{agent_data}/db.sqlite3",
            "MAILADMIN_HELPER_COMMAND": f"sudo -n {split.helper}",
            "MAILADMIN_STAGING_DIR": str(split.staged.parent),
            "MAILADMIN_AGENT_QUEUE": split.queue})
        processes.append(agent)

        page = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and web.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/",
                                            timeout=5) as response:
                    page = response.read().decode()
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        assert 'name="password"' in page, split.log("gunicorn")
        workers = _children(web.pid)
        assert workers, split.log("gunicorn")
        for pid in (web.pid, *workers):
            assert _uids(pid) == {split.uid(split.web)}, pid

        deadline = time.monotonic() + 90
        while "ready." not in split.log("celery") and agent.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.3)
        assert "ready." in split.log("celery"), split.log("celery")
        assert f"{split.queue} " in split.log("celery")  # it consumes the host's queue
        assert _uids(agent.pid) == {split.uid(split.agent)}
        assert split.uid(split.agent) != split.uid(split.web)
    finally:
        for process in processes:
            _stop(process)
        client = redis.Redis.from_url(REDIS, socket_timeout=2)
        for key in client.scan_iter(f"*{split.queue}*"):
            client.delete(key)
