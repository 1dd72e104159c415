"""The static files of deploy/: the environment template, the units, the nginx site."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.deploy.support import (
    DEPLOY,
    UNITS,
    nginx_test,
    self_signed,
    systemd_root,
    systemd_verify,
)
from tests.mailadmin.test_settings_documented import read_variables

ENV_EXAMPLE = DEPLOY / "env.example"
SITE = DEPLOY / "nginx" / "mailadmin.conf"


def test_every_setting_is_in_the_environment_template():
    lines = ENV_EXAMPLE.read_text().splitlines()
    set_or_commented = {m.group(1) for line in lines
                        if (m := re.match(r"#?(MAILADMIN_[A-Z0-9_]+)=", line))}
    assert len(read_variables()) > 50
    missing = sorted(read_variables() - set_or_commented)
    assert missing == [], f"add to deploy/env.example (as NAME=default): {', '.join(missing)}"
    # Nothing in it that the settings do not read (a typo an admin would trust).
    assert sorted(set_or_commented - read_variables()) == []


def test_the_template_sets_each_setting_at_most_once():
    names = [m.group(1) for line in ENV_EXAMPLE.read_text().splitlines()
             if (m := re.match(r"(MAILADMIN_[A-Z0-9_]+)=", line))]
    assert len(names) == len(set(names))


def test_the_template_trusts_the_proxy_the_site_is():
    env = ENV_EXAMPLE.read_text()
    site = SITE.read_text()
    assert "MAILADMIN_TRUSTED_PROXIES=127.0.0.1\n" in env
    assert "MAILADMIN_HTTPS=1\n" in env
    assert "proxy_pass http://127.0.0.1:8000;" in site
    # Set, never appended to ($proxy_add_x_forwarded_for): the panel reads the right-most hop.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in site
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in site
    assert "proxy_set_header Host $host;" in site
    assert "--bind 127.0.0.1:8000" in (DEPLOY / "systemd" / "mailadmin-web.service").read_text()


def test_the_site_uses_lets_encrypt_paths_and_redirects_to_https():
    site = SITE.read_text()
    assert "ssl_certificate /etc/letsencrypt/live/panel.example.org/fullchain.pem;" in site
    assert "ssl_certificate_key /etc/letsencrypt/live/panel.example.org/privkey.pem;" in site
    assert "return 301 https://$host$request_uri;" in site
    assert "location /.well-known/acme-challenge/" in site


@pytest.mark.processes
@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_systemd_analyze_verifies_the_unit(unit, tmp_path):
    root = systemd_root(tmp_path, [unit])
    done = systemd_verify(root, unit.name)
    # verify exits 0 on an unknown key (it only warns): any output is a failure too.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.mark.processes
def test_systemd_analyze_catches_a_broken_unit(tmp_path):
    # Proves the check above is not vacuous in this container.
    broken = tmp_path / "src" / "broken.service"
    broken.parent.mkdir()
    broken.write_text((DEPLOY / "systemd" / "mailadmin-web.service").read_text()
                      .replace("User=", "Usr=").replace("/opt/mailadmin/.venv/bin/gunicorn",
                                                        "/usr/bin/nonexistent-gunicorn"))
    root = systemd_root(tmp_path / "root", [])
    (root / "etc/systemd/system/broken.service").write_text(broken.read_text())
    done = systemd_verify(root, "broken.service")
    assert done.returncode != 0
    assert "Unknown key 'Usr'" in done.stderr
    assert "nonexistent-gunicorn is not executable" in done.stderr


@pytest.mark.processes
def test_nginx_accepts_the_site_with_a_certificate_in_place(tmp_path):
    cert, key = self_signed(tmp_path / "tls")
    site = tmp_path / "mailadmin.conf"
    site.write_text(SITE.read_text()
                    .replace("/etc/letsencrypt/live/panel.example.org/fullchain.pem", str(cert))
                    .replace("/etc/letsencrypt/live/panel.example.org/privkey.pem", str(key)))
    done = nginx_test(site, tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.processes
def test_nginx_refuses_the_site_without_its_certificate(tmp_path):
    # The shipped file names Let's Encrypt's paths, absent here: nginx -t says so,
    # which is why the install points it at a certificate that exists.
    done = nginx_test(SITE, tmp_path)
    assert done.returncode != 0
    assert "/etc/letsencrypt/live/panel.example.org/fullchain.pem" in done.stderr


@pytest.mark.processes
def test_visudo_accepts_the_sudoers_file():
    from tests.deploy.support import need

    done = subprocess.run([need("visudo", "sudo"), "-cf", str(DEPLOY / "sudoers" / "mailadmin")],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_units_run_as_their_users():
    def service(name: str) -> dict[str, str]:
        text = (DEPLOY / "systemd" / f"{name}.service").read_text()
        return dict(line.split("=", 1) for line in text.splitlines()
                    if "=" in line and not line.startswith("#"))
    for name in ("mailadmin-web", "mailadmin-worker", "mailadmin-beat"):
        unit = service(name)
        assert (unit["User"], unit["Group"], unit["NoNewPrivileges"]) == (
            "mailadmin", "mailadmin", "yes"), name
    agent = service("mailadmin-agent")
    assert (agent["User"], agent["Group"], agent["SupplementaryGroups"]) == (
        "mailadmin-agent", "mailadmin-agent", "mailadmin")
    assert "NoNewPrivileges" not in agent  # sudo must work for the agent
