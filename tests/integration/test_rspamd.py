"""Mail passes through the real Rspamd (Debian's) with the rendered configuration.

A stack of its own (tests/integration/mailstack.py with rspamd=True): Postfix
with the rendered milter lines, Dovecot, and a private Rspamd running
Debian's configuration with the rendered local.d files, on loopback ports,
with no DNS leaving the machine. The shared stack of the other integration
tests has no milter.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from unittest import mock

import pytest
from django.test import override_settings

from domains import services
from mailhost.apply import probes
from tests.integration.mailstack import (
    MailStack,
    mail_stack,
    rspamd_vars,
    run,
    stop_rspamd,
)

pytestmark = pytest.mark.daemons

PW = "correct horse battery"


@pytest.fixture(scope="module")
def rspamd_session(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), mail_stack(rspamd=True) as stack:
        yield stack


@pytest.fixture
def mail(rspamd_session: MailStack, transactional_db):
    with override_settings(**rspamd_session.overrides):
        services.create_domain(actor="t", name="example.org")
        services.create_mailbox(actor="t", email="bob@example.org", password=PW)
        services.create_mailbox(actor="t", email="carol@example.org", password=PW)
        yield rspamd_session


def headers(message: str) -> str:
    return message.split("\n\n", 1)[0]


def rspamd_log(stack: MailStack) -> str:
    return (stack.root / "rspamd-state" / "log" / "rspamd.log").read_text(errors="replace")


def test_postfix_runs_with_the_rendered_milter_lines(mail):
    postconf = run(["postconf", "-c", str(mail.postfix_dir), "-h", "smtpd_milters",
                    "non_smtpd_milters", "milter_default_action", "milter_protocol"])
    assert postconf.stdout.split("\n")[:4] == [
        f"inet:127.0.0.1:{mail.ports['rspamd_milter']}", "$smtpd_milters", "accept", "6"]
    # The rendered worker-proxy.inc is what Rspamd read, unchanged.
    rendered = mail.etc / "rspamd" / "local.d" / "worker-proxy.inc"
    assert (mail.rspamd_conf / "local.d" / "worker-proxy.inc").read_text() == (
        rendered.read_text())


def marker() -> str:
    # Not one long token: Rspamd scores those as tracker ids.
    return f"marker {uuid.uuid4().int % 10**9}"


def test_mail_from_outside_is_scanned_and_carries_rspamds_verdict(mail):
    tag = marker()
    result = mail.send_from_outside("bob@example.org", body=tag)
    assert result.returncode == 0, result.stdout
    message = mail.wait_for_mail("bob@example.org", tag)
    top = headers(message)
    # milter_headers.conf: the symbols and score, and the authentication results.
    assert "X-Spamd-Result: default: False [" in top, top
    assert "Authentication-Results: mail.mailadmin.test;" in top, top
    # Postfix's queue id reached Rspamd through the milter macros.
    assert "qid: " in rspamd_log(mail)


def test_submitted_mail_goes_through_rspamd_as_the_authenticated_user(mail):
    tag = marker()
    result = mail.submit(login="bob@example.org", password=PW, sender="bob@example.org",
                         to="carol@example.org")
    assert result.returncode == 0, result.stdout
    result = mail.swaks("--tls", "--auth", "PLAIN", "--auth-user", "bob@example.org",
                        "--auth-password", PW, "--from", "bob@example.org",
                        "--to", "carol@example.org", "--body", tag, port="submission")
    assert result.returncode == 0, result.stdout
    message = mail.wait_for_mail("carol@example.org", tag)
    # Rspamd scanned it as bob's ({auth_authen}), and keeps its verdict out of
    # outgoing mail (skip_authenticated); the DKIM skeleton signs nothing.
    assert "user: bob@example.org" in rspamd_log(mail)
    assert "X-Spamd-Result" not in headers(message)
    assert "DKIM-Signature" not in headers(message)


def test_no_key_is_used_until_the_panel_names_one(mail):
    """A key where Rspamd's stock fallback would look (DBDIR/dkim/DOMAIN.dkim.key)
    signs nothing: the rendered dkim_signing.conf turns the fallback off."""
    keys = mail.root / "rspamd-state" / "db" / "dkim"
    keys.mkdir(exist_ok=True)
    run(["rspamadm", "dkim_keygen", "-d", "example.org", "-s", "dkim", "-b", "2048",
         "-k", str(keys / "example.org.dkim.key")])
    shutil.chown(keys / "example.org.dkim.key", user="_rspamd", group="_rspamd")
    tag = marker()
    result = mail.swaks("--tls", "--auth", "PLAIN", "--auth-user", "bob@example.org",
                        "--auth-password", PW, "--from", "bob@example.org",
                        "--to", "carol@example.org", "--body", tag, port="submission")
    assert result.returncode == 0, result.stdout
    assert "DKIM-Signature" not in headers(mail.wait_for_mail("carol@example.org", tag))


def configtest(conf: Path, stack: MailStack) -> subprocess.CompletedProcess[str]:
    vars_ = [v.replace(str(stack.rspamd_conf), str(conf)) for v in rspamd_vars(stack)]
    return run(["rspamadm", *vars_, "configtest", "-c", str(conf / "rspamd.conf")],
               check=False)


def test_configtest_refuses_a_broken_rendered_file(mail, tmp_path):
    """What the apply's checker (the helper's `check rspamd`) relies on."""
    conf = tmp_path / "rspamd"
    shutil.copytree(mail.rspamd_conf, conf)
    good = configtest(conf, mail)
    assert good.returncode == 0 and "syntax OK" in good.stdout, good.stdout + good.stderr
    with (conf / "local.d" / "dkim_signing.conf").open("a") as handle:
        handle.write("domain {\n")
    bad = configtest(conf, mail)
    assert bad.returncode == 1
    assert "syntax BAD" in bad.stdout
    assert "dkim_signing.conf" in bad.stderr


def test_the_applys_probe_gets_an_answer_from_rspamds_milter(mail):
    """What an apply runs after reloading Rspamd (mailhost/apply/probes.py)."""
    [result] = probes.run_probes(["rspamd"], None)  # type: ignore[arg-type]

    assert (result.name, result.target, result.ok, result.skipped) == (
        "rspamd", f"127.0.0.1:{mail.ports['rspamd_milter']}", True, False), result
    assert result.detail == "milter answered (protocol version 6)"


def test_mail_is_still_delivered_when_rspamd_is_down(mail):
    """milter_default_action = accept. Stops this module's Rspamd: keep it last."""
    stop_rspamd(mail)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", mail.ports["rspamd_milter"]), 1).close()
        except OSError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("rspamd's milter still listens")
    tag = marker()
    result = mail.send_from_outside("bob@example.org", body=tag)
    assert result.returncode == 0, result.stdout
    message = mail.wait_for_mail("bob@example.org", tag)
    assert "X-Spamd-Result" not in headers(message)
    assert "connect to Milter service" in mail.tail("postfix.log", 50)
    # The apply's probe says so in one line, and would roll back.
    with mock.patch.object(probes, "ATTEMPTS", 2):
        [result] = probes.run_probes(["rspamd"], None)  # type: ignore[arg-type]
    assert (result.ok, result.attempts) == (False, 2)
    assert "Connection refused" in result.detail and "\n" not in result.detail
