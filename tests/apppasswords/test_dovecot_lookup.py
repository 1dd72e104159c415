"""The app password's lookup, computed by the panel, equals what the real
Dovecot computes from a typed password with the rendered expression.

A private Dovecot with only a static passdb whose default_fields carry the
expression: `doveadm auth test` prints the value Dovecot expanded.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from mailhost import app_password_lookup

pytestmark = pytest.mark.daemons

TOKENS = ("abcd2345efgh6789abcdefghjkmnpqrs", "zzzzzzzz22222222mmmmmmmmnnnnnnnn")


@pytest.fixture
def dovecot():
    if shutil.which("dovecot") is None or shutil.which("doveadm") is None:
        pytest.skip("dovecot is not installed")
    scratch = Path(tempfile.mkdtemp(prefix="mailadmin-dovecot-lookup-"))
    scratch.chmod(0o755)  # the auth worker runs as the dovecot user
    conf = scratch / "dovecot.conf"
    conf.write_text(f"""\
base_dir = {scratch}/run
state_dir = {scratch}/state
log_path = {scratch}/log
protocols =
ssl = no
auth_mechanisms = plain
passdb {{
  driver = static
  args = nopassword=y
  default_fields = lookup={app_password_lookup.dovecot_lookup_expression()}
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={scratch}/home
}}
""")
    subprocess.run(["dovecot", "-c", str(conf)], check=True, timeout=30)
    try:
        yield conf
    finally:
        subprocess.run(["doveadm", "-c", str(conf), "stop"], check=False, timeout=30)
        time.sleep(0.2)
        shutil.rmtree(scratch, ignore_errors=True)


def dovecot_lookup(conf: Path, token: str) -> str:
    for _ in range(50):  # the auth socket appears shortly after the start
        result = subprocess.run(["doveadm", "-c", str(conf), "auth", "test", "-x",
                                 "service=imap", "ann@apps.test", token],
                                capture_output=True, text=True, timeout=30, check=False)
        for line in result.stdout.splitlines():
            if line.strip().startswith("lookup="):
                return line.strip().removeprefix("lookup=")
        time.sleep(0.1)
    raise AssertionError(f"no lookup from doveadm: {result.stdout}{result.stderr}")


def test_dovecot_computes_the_stored_lookup_from_the_typed_token(dovecot):
    for token in TOKENS:
        assert dovecot_lookup(dovecot, token) == app_password_lookup.lookup_value(token)
