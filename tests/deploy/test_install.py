"""deploy/install, end to end into a scratch root, twice.

`--root DIR` puts every path under DIR and adds the users to DIR's own passwd
and group (useradd --prefix); it installs no package, runs no pip, no
database and no systemctl. Everything else runs for real: the copy of the
code, the venv, openssl, visudo on the sudoers file, the switch-off of
Debian's system authentication in a copy of this machine's stock
/etc/dovecot, proved with the real doveconf.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.support import (
    DEPLOY,
    ROOT,
    load_install,
    need,
    need_root,
    nginx_test,
    run_install,
    scratch_root,
    systemd_root,
    systemd_verify,
)

pytestmark = pytest.mark.processes


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int, bytes | str]]:
    """Every path under root: mode, owner, group, mtime (ns) and content or link target."""
    seen = {}
    for path in sorted(root.rglob("*")):
        state = path.lstat()
        body: bytes | str = (os.readlink(path) if path.is_symlink()
                             else path.read_bytes() if path.is_file() else "")
        seen[str(path.relative_to(root))] = (state.st_mode, state.st_uid, state.st_gid,
                                             state.st_mtime_ns, body)
    return seen


def passwd_entry(root: Path, name: str) -> list[str]:
    return next(line.split(":") for line in (root / "etc/passwd").read_text().splitlines()
                if line.startswith(f"{name}:"))


def group_id(root: Path, name: str) -> int:
    return int(next(line.split(":")[2] for line in (root / "etc/group").read_text().splitlines()
                    if line.startswith(f"{name}:")))


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines()
                if line and not line.startswith("#"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """One scratch root installed once; the first run's output beside it."""
    need_root()
    need("visudo", "sudo")
    need("openssl", "openssl")
    root = scratch_root(tmp_path_factory.mktemp("install") / "root")
    first = run_install(root)
    assert first.returncode == 0, first.stdout + first.stderr
    return root, first


def test_the_first_run_installs_and_says_what_is_left(installed):
    _, first = installed
    assert "step(s) changed" in first.stdout
    assert "What is left to do:" in first.stdout
    assert "certbot certonly --webroot -w /var/www/letsencrypt -d panel.example.org" in first.stdout
    assert "admin add NAME --superadmin" in first.stdout
    assert "DNS:" in first.stdout
    # --root never reaches the machine: no apt, pip, database, systemctl.
    for step in ("Debian packages", "pip install", "database", "systemctl"):
        assert any(line.strip().startswith("skipped:") and step in line
                   for line in first.stdout.splitlines()), step


def test_a_second_run_changes_nothing(installed, tmp_path):
    root, _ = installed
    before = snapshot(root)
    second = run_install(root)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing changed" in second.stdout
    assert "changed:" not in second.stdout
    assert snapshot(root) == before


def test_a_dry_run_on_an_installed_root_changes_nothing(installed):
    root, _ = installed
    before = snapshot(root)
    dry = run_install(root, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "nothing changed" in dry.stdout
    assert snapshot(root) == before


def test_a_dry_run_on_a_fresh_root_writes_nothing(tmp_path):
    need_root()
    root = scratch_root(tmp_path / "root")
    before = snapshot(root)
    dry = run_install(root, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would: system user mailadmin " in dry.stdout
    assert "would: system user mailadmin-agent " in dry.stdout
    assert "step(s) would change" in dry.stdout
    assert snapshot(root) == before


def group_members(root: Path, name: str) -> list[str]:
    line = next(line for line in (root / "etc/group").read_text().splitlines()
                if line.startswith(f"{name}:"))
    return [m for m in line.split(":")[3].split(",") if m]


def owner(path: Path) -> tuple[int, int, int]:
    state = path.stat()
    return state.st_uid, state.st_gid, stat.S_IMODE(state.st_mode)


def test_the_system_users_are_simulated_in_the_root(installed):
    root, _ = installed
    entry = passwd_entry(root, "mailadmin")
    assert entry[5:] == ["/var/lib/mailadmin", "/usr/sbin/nologin"]
    assert int(entry[2]) < 1000  # a system user
    assert group_id(root, "mailadmin") == int(entry[3])
    agent = passwd_entry(root, "mailadmin-agent")
    assert agent[5:] == ["/var/lib/mailadmin-agent", "/usr/sbin/nologin"]
    assert int(agent[2]) < 1000 and agent[2] != entry[2]
    assert group_id(root, "mailadmin-agent") == int(agent[3])
    # The agent reads the panel's env file through group mailadmin; the panel's
    # user is in no group of the agent's.
    assert group_members(root, "mailadmin") == ["mailadmin-agent"]
    assert group_members(root, "mailadmin-agent") == []


def test_the_agents_staging_directory_is_its_own(installed):
    root, _ = installed
    agent = int(passwd_entry(root, "mailadmin-agent")[2])
    agent_group = group_id(root, "mailadmin-agent")
    for directory in ("var/lib/mailadmin-agent", "var/lib/mailadmin-agent/staging"):
        assert owner(root / directory) == (agent, agent_group, 0o700), directory
    conf = (root / "etc/mailadmin/helper.conf").read_text()
    assert "staging_root = /var/lib/mailadmin-agent/staging\n" in conf
    agent_env = read_env(root / "etc/mailadmin/agent.env")
    assert agent_env["MAILADMIN_STAGING_DIR"] == "/var/lib/mailadmin-agent/staging"


def test_the_environment_file_is_private_and_complete(installed):
    root, _ = installed
    env_file = root / "etc/mailadmin/env"
    assert owner(env_file) == (0, group_id(root, "mailadmin"), 0o640)
    assert owner(root / "etc/mailadmin/agent.env") == (0, group_id(root, "mailadmin-agent"), 0o640)
    assert owner(root / "etc/mailadmin") == (0, group_id(root, "mailadmin"), 0o750)
    env = read_env(env_file)
    assert "@" not in env["MAILADMIN_SECRET_KEY"] and len(env["MAILADMIN_SECRET_KEY"]) >= 50
    assert not any("@" in value and value.startswith("@") for value in env.values())
    assert env["MAILADMIN_ALLOWED_HOSTS"] == "panel.example.org"
    assert env["MAILADMIN_MAIL_HOSTNAME"] == "mx1.example.org"
    assert env["MAILADMIN_DATABASE_URL"].startswith("mysql://mailadmin:")
    assert env["MAILADMIN_DAEMON_DATABASE_URL"].startswith("mysql://mailadmin_ro:")
    # The panel (and the worker, beat) never name the helper; the agent does.
    assert env["MAILADMIN_HELPER_COMMAND"] == "none"
    assert read_env(root / "etc/mailadmin/agent.env") == {
        "MAILADMIN_AGENT_QUEUE": "host.mx1.example.org",
        "MAILADMIN_HELPER_COMMAND": '"sudo -n /usr/local/libexec/mailadmin-helper"',
        "MAILADMIN_STAGING_DIR": "/var/lib/mailadmin-agent/staging",
    }
    # Every setting of the template is still there, commented, for the admin.
    assert env_file.read_text().count("#MAILADMIN_") == (
        (DEPLOY / "env.example").read_text().count("#MAILADMIN_"))


def test_the_environment_file_is_never_rewritten(installed):
    root, _ = installed
    env_file = root / "etc/mailadmin/env"
    original = env_file.read_bytes()
    try:
        env_file.write_bytes(original + b"MAILADMIN_TIME_ZONE=Europe/Paris\n")
        again = run_install(root)
        assert again.returncode == 0, again.stderr
        assert "nothing changed" in again.stdout
        assert env_file.read_bytes().endswith(b"MAILADMIN_TIME_ZONE=Europe/Paris\n")
    finally:
        env_file.write_bytes(original)


def test_an_install_from_before_the_agents_user_is_brought_up_to_date(tmp_path):
    """An env file without MAILADMIN_HELPER_COMMAND, an agent.env with the queue only,
    helper.conf's old staging_root: each gets what this version needs, the
    admin's other lines stay, and a second run changes nothing."""
    need_root()
    root = scratch_root(tmp_path / "root")
    first = run_install(root)
    assert first.returncode == 0, first.stdout + first.stderr
    env_file, agent_env = root / "etc/mailadmin/env", root / "etc/mailadmin/agent.env"
    conf = root / "etc/mailadmin/helper.conf"
    env_file.write_text(env_file.read_text().replace("MAILADMIN_HELPER_COMMAND=none\n", "")
                        + "MAILADMIN_TIME_ZONE=Europe/Paris\n")
    agent_env.write_text("MAILADMIN_AGENT_QUEUE=host.mx9.example.org\n")
    conf.write_text(conf.read_text().replace("/var/lib/mailadmin-agent/staging",
                                             "/var/lib/mailadmin/staging"))
    again = run_install(root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert read_env(env_file)["MAILADMIN_HELPER_COMMAND"] == "none"
    assert read_env(env_file)["MAILADMIN_TIME_ZONE"] == "Europe/Paris"
    assert read_env(agent_env) == {
        "MAILADMIN_AGENT_QUEUE": "host.mx9.example.org",
        "MAILADMIN_HELPER_COMMAND": '"sudo -n /usr/local/libexec/mailadmin-helper"',
        "MAILADMIN_STAGING_DIR": "/var/lib/mailadmin-agent/staging"}
    assert "staging_root = /var/lib/mailadmin-agent/staging\n" in conf.read_text()
    assert owner(agent_env) == (0, group_id(root, "mailadmin-agent"), 0o640)
    third = run_install(root)
    assert "nothing changed" in third.stdout, third.stdout


def test_pip_installs_only_pinned_hashed_files():
    """As root, pip installs the build backend and the dependencies from the lock
    files with --require-hashes, and the project itself with --no-deps."""
    commands = load_install().pip_commands(Path("/v/bin/pip"), Path("/opt/mailadmin"))
    assert [c[-2:] for c in commands] == [
        ["-r", "/opt/mailadmin/requirements-build.lock"],
        ["-r", "/opt/mailadmin/requirements.lock"],
        ["-e", "/opt/mailadmin"]]
    for command in commands[:2]:
        assert "--require-hashes" in command
    assert "--no-deps" in commands[2]
    # No isolated build environment, which pip would fill from the index unchecked.
    assert all("--no-build-isolation" in c for c in commands[1:])
    assert "--only-binary" in commands[0]


def test_a_self_signed_certificate_is_made_and_configured(installed):
    root, _ = installed
    env = read_env(root / "etc/mailadmin/env")
    assert env["MAILADMIN_TLS_CERT"] == "/etc/mailadmin/tls/selfsigned.crt"
    assert env["MAILADMIN_TLS_KEY"] == "/etc/mailadmin/tls/selfsigned.key"
    cert = root / "etc/mailadmin/tls/selfsigned.crt"
    key = root / "etc/mailadmin/tls/selfsigned.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o640
    assert key.stat().st_uid == 0 and key.stat().st_gid == group_id(root, "ssl-cert")
    shown = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-ext",
                            "subjectAltName"], capture_output=True, text=True, check=True)
    assert "DNS:mx1.example.org" in shown.stdout and "DNS:panel.example.org" in shown.stdout


def test_the_helper_and_the_sudoers_file_are_installed(installed):
    root, _ = installed
    helper = root / "usr/local/libexec/mailadmin-helper"
    assert helper.read_bytes() == (DEPLOY / "helper/mailadmin-helper").read_bytes()
    assert stat.S_IMODE(helper.stat().st_mode) == 0o755 and helper.stat().st_uid == 0
    conf = root / "etc/mailadmin/helper.conf"
    assert conf.read_bytes() == (DEPLOY / "helper/helper.conf").read_bytes()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o644 and conf.stat().st_uid == 0
    sudoers = root / "etc/sudoers.d/mailadmin"
    assert stat.S_IMODE(sudoers.stat().st_mode) == 0o440 and sudoers.stat().st_uid == 0
    done = subprocess.run([need("visudo", "sudo"), "-cf", str(sudoers)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert not list((root / "etc/sudoers.d").glob(".mailadmin.*"))


def test_a_broken_sudoers_file_is_never_put_in_place(tmp_path):
    need_root()
    need("visudo", "sudo")
    # A checkout of its own, whose sudoers file has a syntax error.
    checkout = tmp_path / "checkout"
    shutil.copytree(DEPLOY, checkout / "deploy")
    shutil.copy2(ROOT / "pyproject.toml", checkout / "pyproject.toml")
    (checkout / "deploy/sudoers/mailadmin").write_text("mailadmin ALL=(root NOPASSWD: /bin/true\n")
    root = scratch_root(tmp_path / "root")
    done = run_install(root, script=checkout / "deploy" / "install")
    assert done.returncode == 1
    assert "error: visudo -cf" in done.stderr
    assert not (root / "etc/sudoers.d/mailadmin").exists()


def test_the_code_is_copied_root_owned(installed):
    root, _ = installed
    code = root / "opt/mailadmin"
    assert (code / "manage.py").read_bytes() == (ROOT / "manage.py").read_bytes()
    assert (code / "mailadmin/settings.py").stat().st_uid == 0
    assert not (code / ".git").exists() and not (code / "var").exists()
    assert (code / ".venv/bin/python").exists()
    assert stat.S_IMODE((root / "var/lib/mailadmin").stat().st_mode) == 0o700
    assert (root / "var/lib/mailadmin").stat().st_uid == int(passwd_entry(root, "mailadmin")[2])


def test_a_changed_and_a_stale_file_are_put_right(installed):
    root, _ = installed
    code = root / "opt/mailadmin"
    original = (code / "manage.py").read_bytes()
    (code / "manage.py").write_bytes(b"# tampered\n")
    (code / "mailadmin" / "stale_module.py").write_text("# from an older version\n")
    again = run_install(root)
    assert again.returncode == 0, again.stderr
    assert "2 file(s) copied or removed" in again.stdout
    assert (code / "manage.py").read_bytes() == original
    assert not (code / "mailadmin" / "stale_module.py").exists()
    assert "nothing changed" in run_install(root).stdout


def test_dovecot_system_auth_is_switched_off_and_doveconf_proves_it(installed, tmp_path):
    root, first = installed
    doveconf = need("doveconf", "dovecot-core")  # with it, Debian's stock /etc/dovecot
    auth = root / "etc/dovecot/conf.d/10-auth.conf"
    backup = root / "etc/dovecot/conf.d/10-auth.conf.mailadmin-orig"
    assert backup.read_text() == Path("/etc/dovecot/conf.d/10-auth.conf").read_text()
    assert "\n!include auth-system.conf.ext" in backup.read_text()
    assert "\n!include auth-system.conf.ext" not in auth.read_text()
    assert "switched off Dovecot's system auth" in first.stdout
    after = subprocess.run([doveconf, "-c", str(root / "etc/dovecot/dovecot.conf"), "-n"],
                           capture_output=True, text=True, check=True).stdout
    assert "driver = pam" not in after and "driver = passwd" not in after
    # The premise: the same stock tree, untouched, has both.
    stock = scratch_root(tmp_path / "stock")
    before = subprocess.run([doveconf, "-c", str(stock / "etc/dovecot/dovecot.conf"), "-n"],
                            capture_output=True, text=True, check=True).stdout
    assert "passdb {\n  driver = pam\n}" in before and "driver = passwd" in before


def test_the_installed_units_verify(installed, tmp_path):
    root, _ = installed
    units = sorted((root / "etc/systemd/system").glob("mailadmin-*.service"))
    assert [u.name for u in units] == sorted(u.name for u in (DEPLOY / "systemd").glob("*.service"))
    check_root = systemd_root(tmp_path / "systemd", units)
    for unit in units:
        done = systemd_verify(check_root, unit.name)
        assert (unit.name, done.returncode, done.stdout + done.stderr) == (unit.name, 0, "")


def test_the_installed_site_passes_nginx_t_with_the_self_signed_certificate(installed, tmp_path):
    root, _ = installed
    site = (root / "etc/nginx/sites-available/mailadmin.conf").read_text()
    assert os.readlink(root / "etc/nginx/sites-enabled/mailadmin.conf") == (
        "../sites-available/mailadmin.conf")
    assert "server_name panel.example.org;" in site
    assert "ssl_certificate /etc/mailadmin/tls/selfsigned.crt;" in site
    assert "letsencrypt/live" not in site.replace("/.well-known", "")  # no missing file named
    copy = tmp_path / "site.conf"
    copy.write_text(site.replace("/etc/mailadmin/tls/", f"{root}/etc/mailadmin/tls/"))
    done = nginx_test(copy, tmp_path)
    assert done.returncode == 0, done.stderr


def test_lets_encrypt_is_used_once_its_files_are_there(installed, tmp_path):
    root, _ = installed
    live = root / "etc/letsencrypt/live/panel.example.org"
    live.mkdir(parents=True)
    try:
        shutil.copy2(root / "etc/mailadmin/tls/selfsigned.crt", live / "fullchain.pem")
        shutil.copy2(root / "etc/mailadmin/tls/selfsigned.key", live / "privkey.pem")
        again = run_install(root)
        assert again.returncode == 0, again.stderr
        site = (root / "etc/nginx/sites-available/mailadmin.conf").read_text()
        assert "ssl_certificate /etc/letsencrypt/live/panel.example.org/fullchain.pem;" in site
        assert "certbot" not in again.stdout
    finally:
        shutil.rmtree(root / "etc/letsencrypt")
    assert "changed:" in run_install(root).stdout  # back to the self-signed pair
    assert "nothing changed" in run_install(root).stdout


def test_names_are_checked():
    done = subprocess.run(["/usr/bin/python3", str(DEPLOY / "install"), "--root", "/nonexistent",
                           "--mail-name", "not a name"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2
    assert "not a lowercase host name" in done.stderr


def test_the_written_environment_passes_check_deploy(installed, tmp_path):
    """The env file as installed, with only its paths moved into tmp_path (no MariaDB here)."""
    root, _ = installed
    env = read_env(root / "etc/mailadmin/env")
    env.update(MAILADMIN_DATA_DIR=str(tmp_path / "data"),
               MAILADMIN_DATABASE_URL=f"sqlite:///{tmp_path}/data/db.sqlite3",
               MAILADMIN_AUTH_LOG=str(tmp_path / "auth.log"),
               MAILADMIN_TLS_CERT=str(root / "etc/mailadmin/tls/selfsigned.crt"),
               MAILADMIN_TLS_KEY=str(root / "etc/mailadmin/tls/selfsigned.key"))
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT,
                          env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout
