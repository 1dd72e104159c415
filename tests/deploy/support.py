"""Helpers for the production-install tests (deploy/)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
INSTALL = DEPLOY / "install"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


def need(binary: str, package: str) -> str:
    """The binary's path; skipped without it, but a failure under CI (bin/test installs it)."""
    found = shutil.which(binary) or next(
        (str(p) for p in (Path("/usr/sbin") / binary, Path("/sbin") / binary) if p.exists()), None)
    if found is None:
        message = f"needs {binary} (Debian package {package}; bin/test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def need_root() -> None:
    if os.geteuid() != 0:
        message = "the install runs as root (chown, useradd --prefix)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def load_install() -> ModuleType:
    """deploy/install as a module (it has no .py name), to test its parts."""
    loader = importlib.machinery.SourceFileLoader("mailadmin_install", str(INSTALL))
    spec = importlib.util.spec_from_loader("mailadmin_install", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def run_install(root: Path, *args: str, script: Path = INSTALL
                ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/usr/bin/python3", str(script), "--root", str(root), "--mail-name", "mx1.example.org",
         "--panel-name", "panel.example.org", *args],
        capture_output=True, text=True, timeout=300, check=False)


def scratch_root(path: Path) -> Path:
    """A root holding the machine's user tables and its stock /etc/dovecot, as a mail host has."""
    etc = path / "etc"
    etc.mkdir(parents=True)
    for table in ("passwd", "group"):  # not the shadow files: no hashes in scratch dirs
        shutil.copy2(f"/etc/{table}", etc / table)
    if Path("/etc/dovecot/dovecot.conf").exists():
        shutil.copytree("/etc/dovecot", etc / "dovecot", symlinks=True)
    return path


def self_signed(directory: Path, name: str = "panel.example.org") -> tuple[Path, Path]:
    need("openssl", "openssl")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "test.crt", directory / "test.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
                   capture_output=True, check=True, timeout=120)
    return cert, key


def nginx_test(site: Path, scratch: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on a minimal nginx.conf that includes only the site."""
    nginx = need("nginx", "nginx")
    wrapper = scratch / "nginx.conf"
    wrapper.write_text(
        f"pid {scratch}/nginx.pid;\nerror_log {scratch}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {scratch}/body;\n"
        f"  proxy_temp_path {scratch}/proxy;\n  include {site};\n}}\n")
    return subprocess.run([nginx, "-t", "-q", "-p", str(scratch), "-e", str(scratch / "error.log"),
                           "-c", str(wrapper)],
                          capture_output=True, text=True, timeout=60, check=False)


def systemd_root(path: Path, units: list[Path]) -> Path:
    """A root `systemd-analyze verify --root` can check units in.

    verify loads the unit with its dependencies (sysinit.target, ...) and
    checks every Exec binary exists and is executable. In this container
    neither /opt/mailadmin nor systemd's units belong to the unit under test,
    so they are given in a scratch root: systemd's own unit files copied
    from the machine, each Exec binary copied from the machine, or a stub
    where pip would put it (/opt/mailadmin/.venv/bin, not installed here).
    """
    shutil.copytree("/usr/lib/systemd/system", path / "usr/lib/systemd/system", symlinks=True,
                    dirs_exist_ok=True)
    target = path / "etc/systemd/system"
    target.mkdir(parents=True, exist_ok=True)
    for unit in units:
        text = unit.read_text()
        shutil.copy2(unit, target / unit.name)
        for line in text.replace("\\\n", " ").splitlines():
            key, _, value = line.partition("=")
            if not key.startswith("Exec") or not value.strip():
                continue
            binary = value.split()[0].lstrip("-@:+!")
            inside = path / binary.lstrip("/")
            if inside.exists():
                continue
            inside.parent.mkdir(parents=True, exist_ok=True)
            if Path(binary).exists():
                shutil.copy2(binary, inside)
            else:
                assert binary.startswith("/opt/mailadmin/.venv/bin/"), binary
                inside.write_text("#!/bin/sh\n")
                inside.chmod(0o755)
    return path


def systemd_verify(root: Path, unit_name: str) -> subprocess.CompletedProcess[str]:
    analyze = need("systemd-analyze", "systemd")
    return subprocess.run([analyze, "verify", "--man=no", f"--root={root}",
                           f"/etc/systemd/system/{unit_name}"],
                          capture_output=True, text=True, timeout=120, check=False)
