"""apply_config with the daemons' real checkers (postconf, doveconf) on staged files,
and the command's exit status as a shell sees it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.actor import Actor
from mailhost import apply, render

pytestmark = [pytest.mark.django_db, pytest.mark.processes,
              pytest.mark.skipif(not (shutil.which("postconf") and shutil.which("doveconf")),
                                 reason="needs Postfix's postconf and Dovecot's doveconf")]

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def check():
    requested = apply.request_apply(actor=Actor.account("alice"), check_only=True,
                                    enqueue=False)
    return apply.run_apply(requested.pk)


def broken(monkeypatch, path: str, line: str) -> None:
    """Render as usual, with `line` appended to the staged file `path`."""
    real = render.render

    def with_line(options):
        files = real(options)
        files[path] += line + "\n"
        return files

    monkeypatch.setattr(render, "render", with_line)


def test_a_rendered_configuration_passes_both_checkers(live):
    done = check()

    assert (done.state, done.outcome, done.error) == ("done", "would_change", "")
    assert "postconf -c " in done.checker_output and "doveconf -c " in done.checker_output
    assert done.checker_output.count("[exit 0]") == 2


def test_a_broken_main_cf_is_reported_with_postconfs_message(live, monkeypatch):
    broken(monkeypatch, "postfix/main.cf", "this line has no equals sign")

    done = check()

    assert (done.state, done.outcome) == ("failed", "check_failed")
    assert done.error.startswith("postconf refused the staged configuration: postconf: fatal: ")
    assert "missing '=' after attribute name" in done.error
    assert "missing '=' after attribute name" in done.checker_output
    assert not (live / "postfix").exists()


def test_a_broken_dovecot_fragment_is_reported_with_doveconfs_message(live, monkeypatch):
    broken(monkeypatch, "dovecot/conf.d/90-mailadmin.conf", "no_such_dovecot_setting = 1")

    done = check()

    assert (done.state, done.outcome) == ("failed", "check_failed")
    assert done.error.startswith("doveconf refused the staged configuration: ")
    assert "Unknown setting: no_such_dovecot_setting" in done.error
    assert "[exit 89]" in done.checker_output


def test_an_apply_with_a_missing_certificate_exits_1_in_one_line(tmp_path):
    tmp_path.chmod(0o755)
    env = {**os.environ, "MAILADMIN_DATA_DIR": str(tmp_path),
           "MAILADMIN_TLS_CERT": str(tmp_path / "missing-cert.pem")}
    env.pop("MAILADMIN_DATABASE_URL", None)

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT_ROOT,
                              env=env, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    assert manage("migrate", "-v0").returncode == 0
    result = manage("apply_config")

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"CommandError: cannot render: MAILADMIN_TLS_CERT={tmp_path}/missing-cert.pem: no "
        "such file; refusing a configuration whose TLS certificate or key is missing (point "
        "the setting at the host's certificate, or run `make-ssl-cert "
        "generate-default-snakeoil`)"]
    assert result.stdout == ""


def test_a_checker_that_is_not_installed_refuses_rather_than_passes(tmp_path):
    result = apply._run("postconf", [str(tmp_path / "no-such-postconf"), "-n"])

    assert (result.ok, result.returncode) == (False, None)
    assert result.output.endswith("no-such-postconf is not installed here")
    assert "[not run]" in str(result)
