"""Keys made on the mail host: the helper's dkim-* verbs, the host task, the panel's button.

The helper runs here as root (as tests/mailhost/test_helper.py runs it) with
`--conf` pointing at a scratch key directory and `nobody` as the key user:
the real Rspamd key directory is never touched. rspamadm makes the keys.
"""

from __future__ import annotations

import base64
import datetime
import html
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from cryptography.hazmat.primitives import serialization
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEntry
from dkim import keygen, records, services
from dkim.models import DkimKey

HELPER = Path(__file__).resolve().parents[2] / "deploy" / "helper" / "mailadmin-helper"
NOBODY = pwd.getpwnam("nobody")

pytestmark = [pytest.mark.processes,
              pytest.mark.skipif(os.geteuid() != 0, reason="the helper runs as root")]


@dataclass
class KeyDir:
    top: Path
    conf: Path

    @property
    def keys(self) -> Path:
        return self.top / "dkim"

    def helper(self, *args: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
        return subprocess.run(["python3", str(HELPER), "--conf", str(self.conf), *args],
                              capture_output=True, text=True, timeout=120, check=False,
                              env=clean)

    def files(self) -> list[str]:
        return sorted(p.name for p in self.keys.iterdir()) if self.keys.exists() else []


@pytest.fixture
def keydir(tmp_path, monkeypatch) -> Iterator[KeyDir]:
    """A key directory `nobody` can reach (tmp_path is root's 0700), and its helper.conf."""
    for name in [n for n in os.environ if n.startswith("SUDO_")]:
        monkeypatch.delenv(name)  # --conf is refused under sudo
    top = Path(tempfile.mkdtemp(prefix="mailadmin-dkim-"))
    top.chmod(0o755)
    conf = tmp_path / "helper.conf"
    conf.write_text(f"staging_root = {tmp_path}/staging\nbackup_root = {tmp_path}/backups\n"
                    f"dkim_key_dir = {top}/dkim\ndkim_key_user = nobody\n")
    yield KeyDir(top, conf)
    shutil.rmtree(top)


@pytest.fixture
def with_helper(keydir, settings) -> KeyDir:
    settings.MAILADMIN_HELPER_COMMAND = ["python3", str(HELPER), "--conf", str(keydir.conf)]
    return keydir


def public_of_pem(path: Path) -> str:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


# ---------------------------------------------------------------- the helper's verbs


def test_keygen_makes_a_0600_key_of_the_key_user_and_prints_only_its_public_key(keydir):
    done = keydir.helper("dkim-keygen", "a.example", "s20261202a", "rsa", "2048")
    assert done.returncode == 0, done.stderr
    path = keydir.keys / "a.example.s20261202a.key"
    info = path.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (
        0o600, NOBODY.pw_uid, NOBODY.pw_gid)
    directory = keydir.keys.stat()
    assert (stat.S_IMODE(directory.st_mode), directory.st_uid) == (0o700, NOBODY.pw_uid)
    printed = done.stdout.strip()
    assert "PRIVATE" not in done.stdout + done.stderr
    assert printed == public_of_pem(path)
    assert records.key_bits(printed, "rsa") == 2048
    assert keydir.helper("dkim-pubkey", "a.example", "s20261202a").stdout.strip() == printed
    assert keydir.files() == ["a.example.s20261202a.key"]


def test_keygen_makes_ed25519_keys_rspamd_reads(keydir):
    done = keydir.helper("dkim-keygen", "a.example", "ed", "ed25519", "256")
    assert done.returncode == 0, done.stderr
    assert records.key_bits(done.stdout.strip(), "ed25519") == 256
    raw = base64.b64decode((keydir.keys / "a.example.ed.key").read_text())
    assert base64.b64encode(raw[32:]).decode() == done.stdout.strip()


def test_keygen_never_overwrites_a_key(keydir):
    first = keydir.helper("dkim-keygen", "a.example", "s1", "rsa", "2048")
    before = (keydir.keys / "a.example.s1.key").read_bytes()
    again = keydir.helper("dkim-keygen", "a.example", "s1", "rsa", "3072")
    assert (first.returncode, again.returncode) == (0, 2)
    assert "a key is never overwritten" in again.stderr
    assert (keydir.keys / "a.example.s1.key").read_bytes() == before
    assert keydir.files() == ["a.example.s1.key"]


@pytest.mark.parametrize(("args", "message"), [
    (("../etc", "s1", "rsa", "2048"), "is not a domain name"),
    (("A.example", "s1", "rsa", "2048"), "is not a domain name"),
    (("example", "s1", "rsa", "2048"), "is not a domain name"),
    (("a.example", "../../x", "rsa", "2048"), "is not a DKIM selector"),
    (("a.example", "s1/x", "rsa", "2048"), "is not a DKIM selector"),
    (("a.example", "s1", "dsa", "2048"), "unknown key algorithm"),
    (("a.example", "s1", "rsa", "1024"), "not '1024'"),
    (("a.example", "s1", "rsa", "2048 "), "not '2048 '"),
    (("a.example", "s1", "ed25519", "2048"), "not '2048'"),
    (("a.example", "s1", "rsa"), "takes 4 argument"),
])
def test_keygen_refuses_bad_arguments(keydir, args, message):
    done = keydir.helper("dkim-keygen", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert keydir.files() == []


def test_a_key_directory_of_someone_else_or_a_symlink_is_refused(keydir):
    keydir.keys.mkdir(mode=0o700)  # root's
    done = keydir.helper("dkim-keygen", "a.example", "s1", "rsa", "2048")
    assert (done.returncode, "must be owned by nobody" in done.stderr) == (2, True)
    keydir.keys.rmdir()
    (keydir.top / "elsewhere").mkdir()
    os.chown(keydir.top / "elsewhere", NOBODY.pw_uid, NOBODY.pw_gid)
    keydir.keys.symlink_to(keydir.top / "elsewhere")
    done = keydir.helper("dkim-keygen", "a.example", "s1", "rsa", "2048")
    assert (done.returncode, "symlinks are refused" in done.stderr) == (2, True)
    assert list((keydir.top / "elsewhere").iterdir()) == []


def test_pubkey_and_remove_of_a_missing_key(keydir):
    assert keydir.helper("dkim-pubkey", "a.example", "s1").stdout.strip() == "none"
    assert keydir.helper("dkim-remove", "a.example", "s1").stdout.strip() == "absent"
    keydir.helper("dkim-keygen", "a.example", "s1", "rsa", "2048")
    done = keydir.helper("dkim-remove", "a.example", "s1")
    assert done.returncode == 0 and done.stdout.startswith("removed ")
    assert keydir.files() == []
    assert keydir.helper("dkim-remove", "a.example", "s1").stdout.strip() == "absent"
    assert keydir.helper("dkim-remove", "a.example", "../s1").returncode == 2


# ---------------------------------------------------------------- the host's task


def test_generating_makes_the_key_on_the_host_and_stores_its_public_key(
        world, with_helper, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        key = services.generate(actor="t", domain=world.a)
    key.refresh_from_db()
    path = with_helper.keys / f"a.example.{key.selector}.key"
    assert key.public_key == public_of_pem(path)
    assert (key.state, key.problem) == ("pending", "")
    actions = list(AuditEntry.objects.filter(object_type="dkimkey")
                   .values_list("action", flat=True).order_by("pk"))
    assert actions == ["dkim.generate", "dkim.generated"]
    for entry in AuditEntry.objects.all():
        assert "PRIVATE" not in str(entry.before) + str(entry.after)


def test_a_rerun_after_the_file_was_made_reads_it_and_makes_no_second_key(world, with_helper):
    # The agent died after the helper made the file, before the public key was stored.
    key = services.generate(actor="t", domain=world.a)  # its task never ran (no commit)
    made = with_helper.helper("dkim-keygen", "a.example", key.selector, "rsa", "2048")
    before = with_helper.files()
    keygen.make_key(key.pk)
    keygen.make_key(key.pk)
    key.refresh_from_db()
    assert key.public_key == made.stdout.strip()
    assert with_helper.files() == before == [f"a.example.{key.selector}.key"]


def test_a_failed_generation_says_why_on_the_key(world, with_helper):
    key = services.generate(actor="t", domain=world.a)
    with_helper.conf.write_text(with_helper.conf.read_text() + "dkim_key_user = no-such-user\n")
    keygen.make_key(key.pk)
    key.refresh_from_db()
    assert (key.state, key.public_key) == ("pending", "")
    assert "no user no-such-user" in key.problem


def test_a_revoked_key_file_is_removed_and_the_key_is_gone(world, with_helper):
    key = services.generate(actor="t", domain=world.a)
    keygen.make_key(key.pk)
    services.revoke(actor="t", key=key)
    keygen.remove_key_file(key.pk)
    key.refresh_from_db()
    assert (key.state, key.removed is not None, with_helper.files()) == ("gone", True, [])
    assert key.public_key  # kept as history


# ---------------------------------------------------------------- the panel


def generate_url(name: str = "a.example") -> str:
    return reverse("dkim:generate", args=[name])


def test_the_button_generates_and_the_page_shows_the_record(
        world, with_helper, django_capture_on_commit_callbacks):
    client = world.client_for("admin_a")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(generate_url(), {"algorithm": "rsa", "bits": "3072"})
    assert response.status_code == 302
    key = DkimKey.objects.get(domain=world.a)
    assert (key.bits, records.key_bits(key.public_key, "rsa")) == (3072, 3072)
    page = html.unescape(client.get(reverse("dkim:key", args=["a.example"])).content.decode())
    assert records.txt_record(key.selector, "a.example", "rsa", key.public_key) in page
    assert f"<code>{key.selector}._domainkey</code>" in page
    assert f"v=DKIM1; k=rsa; p={key.public_key}" in page


def test_the_button_refuses_1024_bits_and_a_lone_ed25519(world, with_helper):
    client = world.client_for("admin_a")
    response = client.post(generate_url(), {"algorithm": "rsa", "bits": "1024"})
    assert response.status_code == 400
    response = client.post(generate_url(), {"algorithm": "ed25519", "bits": "2048"})
    assert response.status_code == 400
    assert "only signs beside an RSA one" in response.content.decode()
    assert not DkimKey.objects.exists()
    assert with_helper.files() == []


@pytest.mark.parametrize("persona", ["admin_b", "mailbox"])
def test_others_cannot_generate_for_a_nor_see_its_keys(world, with_helper, persona):
    services.generate(actor="t", domain=world.a)
    client = world.client_for(persona)
    before = AuditEntry.objects.count()
    assert client.post(generate_url(), {"algorithm": "rsa", "bits": "2048"}).status_code == 404
    assert client.post(reverse("dkim:check", args=["a.example"])).status_code == 404
    assert client.get(reverse("dkim:key", args=["a.example"])).status_code == 404
    assert DkimKey.objects.filter(domain=world.a).count() == 1
    assert AuditEntry.objects.count() == before
    assert with_helper.files() == []


def test_deleting_a_domain_removes_its_key_file_once_the_config_without_it_is_applied(
        world, with_helper, settings, django_capture_on_commit_callbacks):
    """The real helper's dkim-remove, through the task queued by the deletion."""
    from domains import services as domain_services
    from mailhost.models import ConfigApply, MailHost

    with django_capture_on_commit_callbacks(execute=True):
        key = services.generate(actor="t", domain=world.a)
    key.refresh_from_db()
    key.state, key.published, key.activated = "active", key.created, key.created
    key.save()
    assert with_helper.files() == [f"a.example.{key.selector}.key"]
    settings.MAILADMIN_RSPAMD_MILTER = "inet:127.0.0.1:11332"
    with django_capture_on_commit_callbacks(execute=False) as queued:
        domain_services.delete_domain(actor="t", domain=world.a, force=True)
    ConfigApply.objects.create(host=MailHost.current(), check_only=False, state="done",
                               started=timezone.now() + datetime.timedelta(seconds=1),
                               outcome=ConfigApply.Outcome.APPLIED)
    with mock.patch("mailhost.apply.request_apply"):
        for callback in queued:
            callback()  # the apply (mocked) and the removal task, inline
    key.refresh_from_db()
    assert (key.state, key.domain_id, key.deleted_domain) == ("gone", None, "a.example")
    assert with_helper.files() == []
