"""The agent removes a kept Maildir through the real root helper, as the vmail user.

The helper runs here as root (as tests/mailhost/test_helper.py runs it) with
`--conf` pointing at a scratch vmail directory whose vmail user is `nobody`;
the task runs inline (no broker), as the agent would run it from its queue.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from core.actor import Actor
from core.models import AuditEntry
from domains import services
from domains.models import KeptMaildir
from tests.conftest import change_host

HELPER = Path(__file__).resolve().parents[2] / "deploy" / "helper" / "mailadmin-helper"
ROOT = Actor.account("root@admin.test")
NOBODY = 65534

pytestmark = [pytest.mark.processes,
              pytest.mark.skipif(os.geteuid() != 0, reason="the helper runs as root")]


@pytest.fixture
def vmail(world, settings, monkeypatch, tmp_path):
    """A vmail directory `nobody` can reach (tmp_path is root's 0700), the helper
    configured for it, and the mail host's row pointing at it."""
    for name in [n for n in os.environ if n.startswith("SUDO_")]:
        monkeypatch.delenv(name)  # --conf is refused under sudo
    top = Path(tempfile.mkdtemp(prefix="mailadmin-vmail-"))
    top.chmod(0o755)
    conf = tmp_path / "helper.conf"
    conf.write_text(f"staging_root = {tmp_path}/staging\nbackup_root = {tmp_path}/backups\n"
                    f"vmail_dir = {top}\nvmail_user = nobody\n")
    settings.MAILADMIN_HELPER_COMMAND = ["python3", str(HELPER), "--conf", str(conf)]
    change_host(vmail_dir=str(top))
    yield top
    shutil.rmtree(top)


def maildir_of_carol(top: Path) -> Path:
    maildir = top / "b.example" / "carol"
    (maildir / "cur").mkdir(parents=True)
    (maildir / "cur" / "1.mail").write_text("hello\n")
    for path in (top / "b.example", maildir, maildir / "cur", maildir / "cur" / "1.mail"):
        os.chown(path, NOBODY, NOBODY)
    return maildir


def test_purge_removes_the_directory_as_the_vmail_user(vmail, world,
                                                       django_capture_on_commit_callbacks):
    maildir = maildir_of_carol(vmail)
    assert services.delete_mailbox(actor=ROOT, mailbox=world.carol) == str(maildir)
    kept = KeptMaildir.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        services.purge_kept_maildir(actor=ROOT, kept=kept)

    assert not maildir.exists()
    assert (vmail / "b.example").is_dir()
    kept.refresh_from_db()
    assert kept.removed_at is not None and kept.removal_error == ""
    assert AuditEntry.objects.get(action="mailbox.maildir_removed").after["path"] == str(maildir)


def test_a_refusal_is_recorded_and_the_next_sweep_retries(vmail, world,
                                                          django_capture_on_commit_callbacks):
    services.delete_mailbox(actor=ROOT, mailbox=world.carol)  # no directory on disk yet
    kept = KeptMaildir.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        services.purge_kept_maildir(actor=ROOT, kept=kept)

    kept.refresh_from_db()
    assert kept.is_open and kept.removed_at is None
    assert kept.removal_error == f"refused: {vmail}/b.example does not exist"
    assert AuditEntry.objects.filter(action="mailbox.maildir_remove_failed").count() == 1

    maildir = maildir_of_carol(vmail)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.purge_expired_kept_maildirs() == 1
    assert not maildir.exists()
    kept.refresh_from_db()
    assert kept.removed_at is not None


def test_a_directory_the_vmail_user_cannot_remove_stays_and_the_row_stays_open(
        vmail, world, django_capture_on_commit_callbacks):
    """Root never deletes mail: a file only root may remove survives the purge."""
    maildir = maildir_of_carol(vmail)
    (maildir / "rootonly").mkdir()
    (maildir / "rootonly" / "file").write_text("kept\n")
    services.delete_mailbox(actor=ROOT, mailbox=world.carol)
    kept = KeptMaildir.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        services.purge_kept_maildir(actor=ROOT, kept=kept)

    assert (maildir / "rootonly" / "file").exists()
    kept.refresh_from_db()
    assert kept.is_open and "Permission denied" in kept.removal_error
