"""`manage.py dnscheck` and `manage.py dkim`.

Through `call_command`: what they print and store, and that every refusal is a
one-line CommandError. Through a real `manage.py` process: exit status, one
line on stderr and no traceback. DNS is a closed loopback port, so verdicts
that depend on it are `unknown`; the required-address check needs no DNS.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command
from django.core.management.base import CommandError

from core.models import AuditEntry
from dkim import records as dkim
from dkim.models import DkimKey
from dnscheck.models import CheckRun
from domains import services as domain_services
from domains.models import Domain

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dead_dns")]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SETUP = "setup"


@functools.cache
def rsa_pem_and_base64(bits: int = 2048) -> tuple[str, str]:
    public = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(der).decode()


def refused(cli, *args: str, stdin: str = "") -> str:
    with pytest.raises(CommandError) as error:
        cli(*args, stdin=stdin)
    message = str(error.value)
    assert message and "\n" not in message.strip()
    assert "Traceback" not in message
    return message


@pytest.fixture
def example() -> Domain:
    return domain_services.create_domain(actor=SETUP, name="example.org")


@pytest.fixture
def healthy_addresses(example) -> None:
    """postmaster@ and abuse@ received: nothing that needs no DNS is an error."""
    domain_services.create_alias(actor=SETUP, source="postmaster@example.org",
                                 destinations="admin@else.test", checked_domains=None)
    domain_services.create_alias(actor=SETUP, source="abuse@example.org",
                                 destinations="admin@else.test", checked_domains=None)


# ---------------------------------------------------------------- dnscheck


def test_an_unknown_domain_is_refused_in_one_line(cli, example):
    message = refused(cli, "dnscheck", "nowhere.example")
    assert message == "nowhere.example is not a domain of this server."
    assert not CheckRun.objects.exists()


def test_one_unknown_domain_among_known_ones_checks_nothing(cli, example):
    assert "nowhere.example" in refused(cli, "dnscheck", "example.org", "nowhere.example")
    assert not CheckRun.objects.exists()


def test_a_malformed_domain_name_is_refused_in_one_line(cli, example):
    refused(cli, "dnscheck", "not a domain")


def test_no_active_domains_is_refused(cli):
    domain_services.create_domain(actor=SETUP, name="off.example", active=False)
    assert refused(cli, "dnscheck") == "there are no active domains to check"


def test_json_lists_the_results_and_an_error_makes_it_fail(cli, example):
    out = io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command("dnscheck", "--json", stdout=out)

    assert "example.org" in str(error.value)
    assert "\n" not in str(error.value)
    [run] = json.loads(out.getvalue())
    stored = CheckRun.objects.get()
    assert (run["domain"], run["run"], run["worst"]) == ("example.org", stored.pk, "error")
    assert stored.state == CheckRun.State.DONE
    assert stored.requested_by.startswith("cli:")
    results = {(r["check"], r["subject"]): r for r in run["results"]}
    assert set(results["mx", ""]) == {"check", "subject", "verdict", "reason", "observed",
                                      "expected", "record"}
    assert results["mx", ""]["verdict"] == "unknown"  # DNS is dead
    assert results["required-address", "postmaster"]["verdict"] == "error"
    assert results["required-address", "abuse"]["verdict"] == "warning"
    assert {r["verdict"] for r in run["results"]} <= {"unknown", "warning", "error"}
    assert run["finished"]


def test_it_exits_zero_when_nothing_is_an_error(cli, healthy_addresses):
    [run] = json.loads(cli("dnscheck", "example.org", "--json"))
    assert run["worst"] == "unknown"
    assert {r["verdict"] for r in run["results"]} <= {"ok", "unknown", "warning"}


def test_all_active_domains_are_checked_when_none_are_named(cli, healthy_addresses):
    domain_services.create_domain(actor=SETUP, name="b.example")
    domain_services.create_domain(actor=SETUP, name="off.example", active=False)
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"failed in b\.example$"):
        call_command("dnscheck", "--json", stdout=out)
    assert [r["domain"] for r in json.loads(out.getvalue())] == ["b.example", "example.org"]


def test_a_domain_named_twice_is_checked_once(cli, healthy_addresses):
    runs = json.loads(cli("dnscheck", "example.org", "example.org", "--json"))
    assert [r["domain"] for r in runs] == ["example.org"]
    assert CheckRun.objects.count() == 1


def test_a_domain_named_twice_in_other_case_is_checked_once(cli, healthy_addresses):
    runs = json.loads(cli("dnscheck", "example.org", "EXAMPLE.org.", "--json"))
    assert [r["domain"] for r in runs] == ["example.org"]
    assert CheckRun.objects.count() == 1


def test_the_text_output_marks_each_verdict(cli, example):
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"check\(s\) failed in example\.org"):
        call_command("dnscheck", "example.org", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0] == "example.org: error"
    assert "  ?? mx: " in out.getvalue()
    assert any(line.startswith("  XX required-address postmaster: ") for line in lines)
    assert any(line.startswith("  !! required-address abuse: ") for line in lines)


def test_the_command_does_not_audit(cli, healthy_addresses):
    before = AuditEntry.objects.count()
    cli("dnscheck", "example.org", "--json")
    assert AuditEntry.objects.count() == before


# ---------------------------------------------------------------- dkim


def test_dkim_set_from_a_file_show_and_remove(cli, example, tmp_path):
    pem, key = rsa_pem_and_base64()
    key_file = tmp_path / "mail.pub"
    key_file.write_text(pem)

    out = cli("dkim", "set", "example.org", "mail", "--key-file", str(key_file))

    assert out.strip() == "set mail._domainkey.example.org (rsa, 2048 bits)"
    row = DkimKey.objects.get(domain__name="example.org")
    assert (row.selector, row.public_key, row.algorithm) == ("mail", key, "rsa")
    [entry] = AuditEntry.objects.filter(action="dkim.set")
    assert entry.actor.startswith("cli:")

    shown = cli("dkim", "show", "example.org")
    lines = shown.splitlines()
    assert lines[0] == "mail._domainkey.example.org active (made elsewhere), rsa 2048 bits"
    assert lines[1].strip() == dkim.txt_record("mail", "example.org", "rsa", key)
    assert lines[2:5] == ["  host: mail._domainkey", "  type: TXT",
                          f"  value: v=DKIM1; k=rsa; p={key}"]

    assert cli("dkim", "remove", "example.org").strip() == \
        "removed the DKIM key of example.org"
    assert not DkimKey.objects.exists()
    assert AuditEntry.objects.filter(action="dkim.remove").count() == 1


def test_dkim_set_reads_the_key_from_stdin(cli, example):
    _, key = rsa_pem_and_base64()
    record = f'mail._domainkey IN TXT ( "v=DKIM1; k=rsa; "\n\t"p={key[:200]}"\n\t"{key[200:]}" )'

    out = cli("dkim", "set", "example.org", "S2030", stdin=record)

    assert out.strip() == "set s2030._domainkey.example.org (rsa, 2048 bits)"
    assert DkimKey.objects.get().public_key == key


def test_dkim_set_accepts_a_1024_bit_key_with_a_warning(example, tmp_path):
    pem, key = rsa_pem_and_base64(1024)
    key_file = tmp_path / "short.pub"
    key_file.write_text(pem)
    out, err = io.StringIO(), io.StringIO()
    call_command("dkim", "set", "example.org", "short", "--key-file", str(key_file),
                 stdout=out, stderr=err)
    assert out.getvalue().strip() == "set short._domainkey.example.org (rsa, 1024 bits)"
    assert err.getvalue().strip() == (
        "warning: The RSA key has 1024 bits; 2048 bits is recommended "
        "(the DNS check warns until then).")
    assert DkimKey.objects.get().public_key == key


@pytest.mark.parametrize("text", ["", "not a key\n", "v=DKIM1; k=rsa; p=\n",
                                  "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
def test_dkim_set_refuses_a_bad_key_in_one_line(cli, example, text):
    message = refused(cli, "dkim", "set", "example.org", "mail", stdin=text)
    assert message.startswith("That DKIM key cannot be used: ")
    assert not DkimKey.objects.exists()


def test_dkim_set_refuses_a_bad_selector(cli, example):
    _, key = rsa_pem_and_base64()
    assert "not a valid DKIM selector" in refused(cli, "dkim", "set", "example.org", "bad..sel",
                                                  stdin=key)


@pytest.mark.parametrize("name", ["missing.pub", "a-directory"])
def test_dkim_set_refuses_an_unreadable_file(cli, example, tmp_path, name):
    (tmp_path / "a-directory").mkdir()
    path = tmp_path / name
    message = refused(cli, "dkim", "set", "example.org", "mail", "--key-file", str(path))
    assert message.startswith(f"cannot read {path}: ")
    assert not DkimKey.objects.exists()


def test_dkim_set_refuses_a_file_that_is_not_utf8(cli, example, tmp_path):
    path = tmp_path / "key.bin"
    path.write_bytes(b"\xff\xfe\x00key")
    assert refused(cli, "dkim", "set", "example.org", "mail", "--key-file",
                   str(path)).startswith("cannot read ")


def test_dkim_on_an_unknown_domain_is_refused(cli, example):
    _, key = rsa_pem_and_base64()
    for args in (("set", "nowhere.example", "mail"), ("show", "nowhere.example"),
                 ("remove", "nowhere.example")):
        assert refused(cli, "dkim", *args, stdin=key) == \
            "nowhere.example is not a domain of this server."


def test_dkim_show_and_remove_without_a_key_are_refused(cli, example):
    assert refused(cli, "dkim", "show", "example.org") == "example.org has no DKIM key set"
    assert refused(cli, "dkim", "remove", "example.org") == "example.org has no DKIM key set."


# ---------------------------------------------------------------- the real command line


def manage(data_dir: Path, *args: str, input: str | None = None
           ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAILADMIN_DATA_DIR": str(data_dir),
           # Whatever a command would ask, it asks a closed port on loopback.
           "MAILADMIN_DNS_RESOLVERS": "127.0.0.1@9", "MAILADMIN_DNS_TIMEOUT": "0.2",
           "MAILADMIN_DNS_TRIES": "1", "MAILADMIN_DNSBL_ZONES": "zen.dnsbl.test",
           "MAILADMIN_DNSBL_DOMAIN_ZONES": "dbl.dnsbl.test"}
    env.pop("MAILADMIN_DATABASE_URL", None)  # its own SQLite file in data_dir
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=120, input=input,
        stdin=subprocess.DEVNULL if input is None else None,
    )


def refused_cleanly(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dnscheck-cli")
    result = manage(path, "migrate", "--noinput", "-v0")
    assert result.returncode == 0, result.stderr
    return path


@pytest.mark.processes
class TestTheCommandLine:
    def test_no_domains_is_one_line_and_status_1(self, data_dir):
        line = refused_cleanly(manage(data_dir, "dnscheck"))
        assert line == "CommandError: there are no active domains to check"

    def test_an_unknown_domain_is_one_line_and_status_1(self, data_dir):
        line = refused_cleanly(manage(data_dir, "dnscheck", "nowhere.example", "--json"))
        assert line == "CommandError: nowhere.example is not a domain of this server."

    def test_an_unreadable_key_file_is_one_line_and_status_1(self, data_dir, tmp_path):
        result = manage(data_dir, "domain", "add", "example.org")
        assert result.returncode == 0, result.stderr
        line = refused_cleanly(manage(data_dir, "dkim", "set", "example.org", "mail",
                                      "--key-file", str(tmp_path / "missing")))
        assert line.startswith("CommandError: cannot read ")

    def test_a_bad_key_on_stdin_is_one_line_and_status_1(self, data_dir):
        manage(data_dir, "domain", "add", "bad-key.example")
        line = refused_cleanly(manage(data_dir, "dkim", "set", "bad-key.example", "mail",
                                      input="garbage\n"))
        assert line.startswith("CommandError: That DKIM key cannot be used: ")
