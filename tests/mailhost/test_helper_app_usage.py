"""The root helper's `app-usage` verb, and the sync that calls it.

The helper runs as root (as the tests do) on a scratch usage directory owned
by Dovecot's user, as deploy/install makes it; the lines are written here as
the login check writes them (tests/integration/test_app_password_usage.py
has the real Dovecot write them).
"""

from __future__ import annotations

import io
import os
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apppasswords import services
from core.actor import Actor
from mailhost import app_usage
from tests.mailhost.test_helper_content import HELPER

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="the helper runs as root"),
              pytest.mark.processes]

USAGE = "app-password-usage"
TAKEN = "app-password-usage.taken"


@dataclass
class Usage:
    conf: Path
    dir: Path

    def helper(self, *args: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
        return subprocess.run([str(HELPER), "--conf", str(self.conf), *args], env=clean,
                              capture_output=True, text=True, timeout=60, check=False)

    def write(self, text: str, name: str = USAGE) -> None:
        path = self.dir / name
        with open(path, "a") as handle:
            handle.write(text)
        shutil.chown(path, user="dovecot", group="dovecot")
        path.chmod(0o600)


@pytest.fixture
def usage(tmp_path: Path, settings) -> Usage:
    directory = tmp_path / "app-usage"
    directory.mkdir(mode=0o700)
    shutil.chown(directory, user="dovecot", group="dovecot")
    conf = tmp_path / "helper.conf"
    conf.write_text(f"staging_root = {tmp_path / 'staging'}\n"
                    f"backup_root = {tmp_path / 'backups'}\napp_usage_dir = {directory}\n")
    settings.MAILADMIN_HELPER_COMMAND = [str(HELPER), "--conf", str(conf)]
    settings.MAILADMIN_DOVECOT_APP_USAGE_DIR = str(directory)
    return Usage(conf, directory)


def test_take_renames_aside_and_done_forgets_only_what_was_taken(usage):
    usage.write("1 192.0.2.7 imap 1800000000\n2 - smtp 1800000001\n")
    taken = app_usage.take()
    assert taken.lines == ["1 192.0.2.7 imap 1800000000", "2 - smtp 1800000001"]
    assert not (usage.dir / USAGE).exists() and (usage.dir / TAKEN).exists()
    # A sync that failed before `done` gets the same lines again.
    assert app_usage.take() == taken
    usage.write("3 192.0.2.8 imap 1800000002\n")  # a new file meanwhile
    assert app_usage.done(taken) == "removed"
    assert not (usage.dir / TAKEN).exists()
    assert app_usage.take().lines == ["3 192.0.2.8 imap 1800000002"]


def test_a_line_appended_to_the_taken_file_after_the_take_is_not_lost(usage):
    usage.write("1 192.0.2.7 imap 1800000000\n")
    taken = app_usage.take()
    usage.write("1 192.0.2.9 imap 1800000005\n", name=TAKEN)  # a login that opened it before
    assert app_usage.done(taken) == "changed"
    again = app_usage.take()
    assert again.lines == ["1 192.0.2.7 imap 1800000000", "1 192.0.2.9 imap 1800000005"]
    assert app_usage.done(again) == "removed"
    assert app_usage.take() == app_usage.NOTHING


def test_done_keeps_the_rest_beyond_what_was_handed_over(usage):
    usage.write("1 192.0.2.7 imap 1800000000\n2 192.0.2.7 imap 1800000001\n")
    taken = app_usage.take()
    first = len("1 192.0.2.7 imap 1800000000\n")
    done = usage.helper("app-usage", "done", taken.ident, str(first))
    assert done.returncode == 0 and done.stdout.strip() == f"kept {first} bytes"
    assert app_usage.take().lines == ["2 192.0.2.7 imap 1800000001"]


def test_nothing_recorded_is_nothing_to_take(usage):
    assert app_usage.take() == app_usage.NOTHING
    assert app_usage.done(app_usage.NOTHING) == ""


@pytest.mark.parametrize("args", [["done"], ["done", "x", "1"], ["done", "1.2", "-1"],
                                  ["give"], ["take", "more"]])
def test_other_requests_are_refused(usage, args):
    result = usage.helper("app-usage", *args)
    assert result.returncode == 2 and "refused" in result.stderr


def test_a_taken_file_that_is_a_link_is_refused(usage, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("root's\n")
    (usage.dir / TAKEN).symlink_to(secret)
    assert usage.helper("app-usage", "take").returncode != 0
    (usage.dir / TAKEN).unlink()
    os.link(secret, usage.dir / TAKEN)
    result = usage.helper("app-usage", "take")
    assert result.returncode == 2 and "plain file" in result.stderr
    assert "root's" not in result.stdout


def test_a_usage_dir_that_is_a_symlink_or_missing_fails_with_one_line(usage, tmp_path):
    shutil.rmtree(usage.dir)
    missing = usage.helper("app-usage", "take")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    usage.dir.symlink_to(tmp_path)
    assert usage.helper("app-usage", "take").returncode == 1


def test_the_sync_applies_good_lines_skips_bad_ones_and_forgets_them(usage, world):
    from apppasswords.models import AppPassword

    row = services.create_app_password(actor=Actor.cli(), mailbox=world.bob, name="Phone",
                                       protocols=["imap", "smtp"]).app_password
    usage.write(f"{row.pk} 192.0.2.7 imap 1800000000\n"
                f"{row.pk} 192.0.2.8 submission 1800000100\n"
                f"{row.pk} 192.0.2.9 imap 1700000000\n"  # older: the newest wins
                "garbage\n"
                f"{row.pk} 999.1.1.1 imap 1800000000\n"
                f"{row.pk} 192.0.2.7 pop3 1800000000\n"
                "\xff\xfe binary\n")
    out = io.StringIO()
    call_command("app_password_usage", "sync", stdout=out)
    assert "7 lines read, 4 skipped (malformed), 1 app password updated" in out.getvalue()
    row = AppPassword.objects.get(pk=row.pk)
    assert (row.last_ip, row.last_service, int(row.last_used.timestamp())) == (
        "192.0.2.8", "smtp", 1800000100)
    assert list(usage.dir.iterdir()) == []
    # The same lines again (a sync that failed before `done`) change nothing.
    usage.write(f"{row.pk} 192.0.2.7 imap 1800000000\n")
    assert services.sync_app_password_usage(actor=Actor.cli()).updated == 0


def test_a_sync_the_helper_refuses_is_a_command_error_not_a_traceback(usage):
    shutil.rmtree(usage.dir)
    with pytest.raises(CommandError, match="does not exist"):
        call_command("app_password_usage", "sync", stdout=io.StringIO())


def test_done_keeps_a_big_rest_without_holding_it_in_memory(usage):
    """A backlog (the panel's sync down for days) can be far more than one take hands
    over; `done` keeps the rest as root, so it copies it in bounded pieces, never the
    whole rest in memory at once."""
    line = b"1 192.0.2.7 imap 1800000000\n"
    block = line * (1024 * 1024 // len(line))
    with open(usage.dir / USAGE, "wb") as handle:
        for _ in range(300):  # about 300 MB
            handle.write(block)
    shutil.chown(usage.dir / USAGE, user="dovecot", group="dovecot")
    size = (usage.dir / USAGE).stat().st_size
    taken = app_usage.take()
    assert 0 < taken.size < size

    def small_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (200 * 1024 * 1024, 200 * 1024 * 1024))

    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
    done = subprocess.run([str(HELPER), "--conf", str(usage.conf), "app-usage", "done",
                           taken.ident, str(taken.size)], env=clean, capture_output=True,
                          text=True, timeout=120, check=False, preexec_fn=small_memory)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == f"kept {size - taken.size} bytes"
    assert (usage.dir / TAKEN).stat().st_size == size - taken.size
    with open(usage.dir / TAKEN, "rb") as handle:
        assert handle.read(len(line)) == line
