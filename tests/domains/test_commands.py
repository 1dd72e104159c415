"""The mail management commands: domain, mailbox, alias and domainalias.

Two layers:

* through `call_command`, every documented form works and changes the database,
  and every refusal is a one-line CommandError that leaves the database as it was;
* through a real `manage.py` process, the contract a shell user sees: exit status,
  exactly one line on stderr and never a traceback, passwords never echoed.

Personas: example.org is the panel's domain (10G in total, 1G per new mailbox),
bob@example.org its first mailbox, carol@else.net someone outside the server,
alias.example an alias domain of example.org.
"""

from __future__ import annotations

import datetime
import getpass
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from core.models import AuditEntry
from domains import passwords, services
from domains.models import Alias, AliasDomain, Domain, Mailbox

pytestmark = pytest.mark.django_db

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SETUP = "test-setup"
PASSWORD = "s3cret-Passw0rd!"
NEW_PASSWORD = "an0ther-Passw0rd?"
GIB = 1024**3
LONG_LOCAL = "a" * 65


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(autouse=True)
def _mail_settings(settings):
    settings.MAILADMIN_PASSWORD_SCHEME = "BLF-CRYPT"
    settings.MAILADMIN_VMAIL_DIR = "/srv/vmail"


class TTYInput(io.StringIO):
    """Standard input as a terminal, so the commands prompt for the password."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def example() -> Domain:
    return services.create_domain(actor=SETUP, name="example.org", description="Example",
                                  max_quota="10G", default_quota="1G")


@pytest.fixture
def bob(example) -> Mailbox:
    return services.create_mailbox(actor=SETUP, email="bob@example.org", password=PASSWORD,
                                   name="Bob", quota="2G")


@pytest.fixture
def postmaster(bob) -> Alias:
    return services.create_alias(actor=SETUP, source="postmaster@example.org",
                                 destinations="bob@example.org,carol@else.net",
                                 checked_domains=None)


@pytest.fixture
def catchall(bob) -> Alias:
    return services.create_alias(actor=SETUP, source="@example.org",
                                 destinations="bob@example.org", checked_domains=None)


@pytest.fixture
def alias_domain(example) -> AliasDomain:
    return services.create_alias_domain(actor=SETUP, name="alias.example", target="example.org")


@pytest.fixture
def world(bob, postmaster, catchall, alias_domain) -> None:
    """example.org with bob, postmaster, a catch-all and alias.example."""


def db_state() -> dict[str, list[dict[str, Any]]]:
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (Domain, Mailbox, Alias, AliasDomain, AuditEntry)
    }


def cli_audit() -> list[AuditEntry]:
    return list(AuditEntry.objects.exclude(actor=SETUP))


# ---------------------------------------------------------------- domain


def test_it_adds_a_domain_with_every_option(cli):
    out = cli("domain", "add", "Example.ORG", "--description", "Our mail",
              "--max-mailboxes", "5", "--max-aliases", "7",
              "--max-quota", "10G", "--default-quota", "1G")

    assert out == "added example.org\n"
    domain = Domain.objects.get()
    assert (domain.name, domain.description, domain.active) == ("example.org", "Our mail", True)
    assert (domain.max_mailboxes, domain.max_aliases) == (5, 7)
    assert (domain.max_quota, domain.default_quota) == (10 * GIB, 1 * GIB)


def test_it_adds_a_disabled_domain_without_limits(cli):
    cli("domain", "add", "example.org", "--disabled")

    domain = Domain.objects.get()
    assert domain.active is False
    assert (domain.max_mailboxes, domain.max_aliases, domain.max_quota,
            domain.default_quota) == (0, 0, 0, 0)


def test_it_edits_only_the_options_given(cli, example):
    out = cli("domain", "edit", "example.org", "--description", "Renamed",
              "--max-mailboxes", "9")

    assert out == "changed example.org\n"
    example.refresh_from_db()
    assert (example.description, example.max_mailboxes) == ("Renamed", 9)
    assert (example.max_aliases, example.max_quota, example.default_quota) == (0, 10 * GIB, GIB)

    cli("domain", "edit", "example.org", "--max-quota", "20G", "--default-quota", "2G",
        "--max-aliases", "3")
    example.refresh_from_db()
    assert (example.max_quota, example.default_quota, example.max_aliases) == (
        20 * GIB, 2 * GIB, 3)
    assert example.description == "Renamed"


def test_it_lists_domains_as_text(cli, world):
    services.create_domain(actor=SETUP, name="other.org", active=False)

    out = cli("domain", "list")

    assert out.splitlines() == [
        "example.org\tactive\t1\t2\t1G/10G\tExample",
        "other.org\tdisabled\t0\t0\tunlimited/unlimited\t",
    ]


def test_it_lists_domains_as_json(cli, world):
    rows = json.loads(cli("domain", "list", "--json"))

    assert rows == [{
        "name": "example.org", "active": True, "description": "Example",
        "mailboxes": 1, "max_mailboxes": 0, "aliases": 2, "max_aliases": 0,
        "max_quota": 10 * GIB, "default_quota": GIB, "quota": "1G/10G",
    }]


def test_it_disables_and_enables_a_domain(cli, example):
    assert cli("domain", "disable", "example.org") == "disabled example.org\n"
    example.refresh_from_db()
    assert example.active is False

    assert cli("domain", "enable", "example.org") == "enabled example.org\n"
    example.refresh_from_db()
    assert example.active is True


def test_it_deletes_an_empty_domain(cli, example):
    assert cli("domain", "delete", "example.org") == "deleted example.org\n"

    assert not Domain.objects.exists()


def test_it_force_deletes_a_domain_and_names_the_maildirs_kept(cli, world):
    services.create_mailbox(actor=SETUP, email="dave@example.org", password=PASSWORD)

    out = cli("domain", "delete", "example.org", "--force")

    assert out.splitlines() == [
        "deleted example.org",
        "mail kept on disk: /srv/vmail/example.org/bob",
        "mail kept on disk: /srv/vmail/example.org/dave",
    ]
    for model in (Domain, Mailbox, Alias, AliasDomain):
        assert not model.objects.exists(), model


# ---------------------------------------------------------------- mailbox


def test_it_adds_a_mailbox_with_the_password_from_stdin(cli, example):
    out = cli("mailbox", "add", "Bob@Example.org", "--password-stdin", "--name", "Bob",
              "--quota", "2G", stdin=PASSWORD + "\n")

    assert out == "added bob@example.org (quota 2G)\n"
    mailbox = Mailbox.objects.get()
    assert (mailbox.email, mailbox.name, mailbox.quota, mailbox.active) == (
        "bob@example.org", "Bob", 2 * GIB, True)
    assert mailbox.domain == example
    assert passwords.verify_password(PASSWORD, mailbox.password)
    assert PASSWORD not in mailbox.password


def test_it_gives_a_new_mailbox_the_domain_default_quota(cli, example):
    cli("mailbox", "add", "bob@example.org", "--password-stdin", "--disabled",
        stdin=PASSWORD + "\r\n")

    mailbox = Mailbox.objects.get()
    assert (mailbox.quota, mailbox.active, mailbox.name) == (GIB, False, "")
    assert passwords.verify_password(PASSWORD, mailbox.password)


def test_it_prompts_for_the_password_on_a_terminal(cli, example, monkeypatch):
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return PASSWORD

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    monkeypatch.setattr(sys, "stdin", TTYInput())
    out = io.StringIO()
    call_command("mailbox", "add", "bob@example.org", stdout=out)

    assert prompts == ["Password: ", "Password (again): "]
    assert passwords.verify_password(PASSWORD, Mailbox.objects.get().password)
    assert PASSWORD not in out.getvalue()


def test_it_refuses_two_different_passwords_at_the_prompt(example, monkeypatch):
    answers = iter([PASSWORD, NEW_PASSWORD])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    monkeypatch.setattr(sys, "stdin", TTYInput())
    before = db_state()

    with pytest.raises(CommandError, match="the two passwords differ"):
        call_command("mailbox", "add", "bob@example.org", stdout=io.StringIO())

    assert db_state() == before


def test_it_changes_a_password_from_stdin(cli, bob):
    out = cli("mailbox", "passwd", "bob@example.org", "--password-stdin",
              stdin=NEW_PASSWORD + "\n")

    assert out == "password changed for bob@example.org\n"
    bob.refresh_from_db()
    assert passwords.verify_password(NEW_PASSWORD, bob.password)
    assert not passwords.verify_password(PASSWORD, bob.password)
    assert bob.password_changed is not None
    assert timezone.now() - bob.password_changed < datetime.timedelta(minutes=1)


def test_it_lists_the_mailboxes_whose_hash_is_over_the_cost_bounds(cli, bob, settings):
    # Planted before the bounds existed, or brought in by `adopt`: Dovecot still
    # verifies them, so an admin needs the list to reset those passwords.
    services.create_mailbox(actor=SETUP, email="carol@example.org", password=PASSWORD)
    services.create_mailbox(actor=SETUP, email="dan@example.org", password=PASSWORD)
    Mailbox.objects.filter(email="carol@example.org").update(
        password=bob.password.replace("$04$", "$31$", 1))
    Mailbox.objects.filter(email="dan@example.org").update(
        password="{ARGON2ID}$argon2id$v=19$m=4194304,t=100000,p=1$/f9/j9Eao9Tae0+JUaq19g$"
                 "g7J2Pro/6omqhZ8SJKZ/nbr+ctH2uiLZUvuMMVIGtVE")

    assert cli("mailbox", "costly-hashes") == (
        "carol@example.org\tBLF-CRYPT\tcost 31\n"
        "dan@example.org\tARGON2ID\tmemory 4194304 KiB, time cost 100000\n")
    rows = json.loads(cli("mailbox", "costly-hashes", "--json"))
    assert [r["email"] for r in rows] == ["carol@example.org", "dan@example.org"]
    assert rows[0] == {"email": "carol@example.org", "scheme": "BLF-CRYPT", "cost": "cost 31"}
    settings.MAILADMIN_MAX_BCRYPT_COST = 31
    assert "carol@example.org" not in cli("mailbox", "costly-hashes")


def test_it_edits_a_mailbox(cli, bob):
    assert cli("mailbox", "edit", "bob@example.org", "--name", "Robert",
               "--quota", "3G") == "changed bob@example.org\n"

    bob.refresh_from_db()
    assert (bob.name, bob.quota) == ("Robert", 3 * GIB)

    cli("mailbox", "edit", "bob@example.org", "--quota", "512M")
    bob.refresh_from_db()
    assert (bob.name, bob.quota) == ("Robert", 512 * 1024**2)


def test_it_lists_mailboxes_as_text_and_by_domain(cli, bob):
    services.create_domain(actor=SETUP, name="other.org")
    services.create_mailbox(actor=SETUP, email="zed@other.org", password=PASSWORD,
                            active=False)

    assert cli("mailbox", "list").splitlines() == [
        f"bob@example.org\tactive\t{2 * GIB}\tBob",
        "zed@other.org\tdisabled\t0\t",
    ]
    assert cli("mailbox", "list", "example.org").splitlines() == [
        f"bob@example.org\tactive\t{2 * GIB}\tBob",
    ]


def test_it_lists_mailboxes_as_json(cli, bob):
    services.create_domain(actor=SETUP, name="other.org")
    services.create_mailbox(actor=SETUP, email="zed@other.org", password=PASSWORD)

    rows = json.loads(cli("mailbox", "list", "example.org", "--json"))

    assert [{k: v for k, v in row.items() if k != "created"} for row in rows] == [
        {"email": "bob@example.org", "name": "Bob", "quota": 2 * GIB, "active": True},
    ]
    assert rows[0]["created"].startswith(str(timezone.now().year))
    assert "password" not in rows[0]
    assert json.loads(cli("mailbox", "list", "--json"))[1]["email"] == "zed@other.org"


def test_it_disables_and_enables_a_mailbox(cli, bob):
    assert cli("mailbox", "disable", "bob@example.org") == "disabled bob@example.org\n"
    bob.refresh_from_db()
    assert bob.active is False

    assert cli("mailbox", "enable", "bob@example.org") == "enabled bob@example.org\n"
    bob.refresh_from_db()
    assert bob.active is True


def test_it_deletes_a_mailbox_and_names_the_maildir_kept(cli, bob):
    services.create_alias(actor=SETUP, source="info@example.org", destinations="bob@example.org",
                          checked_domains=None)

    out = cli("mailbox", "delete", "bob@example.org")

    assert out == "deleted bob@example.org; mail kept on disk: /srv/vmail/example.org/bob\n"
    assert not Mailbox.objects.exists()
    assert not Alias.objects.filter(source="info@example.org").exists()


# ---------------------------------------------------------------- alias


def test_it_adds_an_alias_with_several_destinations(cli, bob):
    out = cli("alias", "add", "postmaster@example.org", "bob@example.org,Carol@Else.net")

    assert out == "added postmaster@example.org -> bob@example.org,carol@else.net\n"
    alias = Alias.objects.get()
    assert (alias.source, alias.destination_list, alias.active) == (
        "postmaster@example.org", ["bob@example.org", "carol@else.net"], True)


def test_it_adds_a_catchall(cli, bob):
    assert cli("alias", "add", "@example.org", "bob@example.org") == (
        "added @example.org -> bob@example.org\n")

    alias = Alias.objects.get()
    assert alias.is_catchall
    assert (alias.source, alias.destinations) == ("@example.org", "bob@example.org")


def test_it_replaces_an_alias_destinations(cli, postmaster):
    out = cli("alias", "edit", "postmaster@example.org", "dan@else.net")

    assert out == "changed postmaster@example.org -> dan@else.net\n"
    postmaster.refresh_from_db()
    assert postmaster.destinations == "dan@else.net"


def test_it_lists_aliases(cli, world):
    services.create_domain(actor=SETUP, name="other.org")
    services.create_alias(actor=SETUP, source="info@other.org", destinations="bob@example.org",
                          active=False, checked_domains=None)

    assert cli("alias", "list").splitlines() == [
        "@example.org\tactive\tbob@example.org",
        "info@other.org\tdisabled\tbob@example.org",
        "postmaster@example.org\tactive\tbob@example.org,carol@else.net",
    ]
    assert json.loads(cli("alias", "list", "example.org", "--json")) == [
        {"source": "@example.org", "active": True, "destinations": "bob@example.org"},
        {"source": "postmaster@example.org", "active": True,
         "destinations": "bob@example.org,carol@else.net"},
    ]


def test_it_disables_enables_and_deletes_an_alias(cli, catchall):
    assert cli("alias", "disable", "@example.org") == "disabled @example.org\n"
    catchall.refresh_from_db()
    assert catchall.active is False

    assert cli("alias", "enable", "@example.org") == "enabled @example.org\n"
    catchall.refresh_from_db()
    assert catchall.active is True

    assert cli("alias", "delete", "@example.org") == "deleted @example.org\n"
    assert not Alias.objects.exists()


# ---------------------------------------------------------------- domainalias


def test_it_adds_an_alias_domain(cli, example):
    assert cli("domainalias", "add", "Alias.Example", "example.org") == (
        "added alias.example -> example.org\n")

    alias_domain = AliasDomain.objects.get()
    assert (alias_domain.name, alias_domain.target, alias_domain.active) == (
        "alias.example", example, True)


def test_it_lists_alias_domains(cli, alias_domain):
    assert cli("domainalias", "list") == "alias.example\tactive\texample.org\n"
    assert json.loads(cli("domainalias", "list", "--json")) == [
        {"name": "alias.example", "target": "example.org", "active": True},
    ]


def test_it_disables_enables_and_deletes_an_alias_domain(cli, alias_domain):
    assert cli("domainalias", "disable", "alias.example") == "disabled alias.example\n"
    alias_domain.refresh_from_db()
    assert alias_domain.active is False

    assert cli("domainalias", "enable", "alias.example") == "enabled alias.example\n"
    alias_domain.refresh_from_db()
    assert alias_domain.active is True

    assert cli("domainalias", "delete", "alias.example") == "deleted alias.example\n"
    assert not AliasDomain.objects.exists()


# ---------------------------------------------------------------- refusals


def _pw(*args: str) -> tuple[tuple[str, ...], str]:
    return args, PASSWORD + "\n"


REFUSALS = {
    "duplicate domain": (("domain", "add", "example.org"), "", "already exists"),
    "bad domain name": (("domain", "add", "not a domain"), "", "not a valid domain name"),
    "domain that is an alias domain": (("domain", "add", "alias.example"), "",
                                       "already an alias domain"),
    "quota that is no size": (("domain", "add", "new.org", "--max-quota", "banana"), "",
                              "'banana' is not a size"),
    "total quota without default": (("domain", "add", "new.org", "--max-quota", "10G"), "",
                                    "needs a default mailbox quota"),
    "negative limit": (("domain", "add", "new.org", "--max-mailboxes", "-1"), "",
                       "must be between 0"),
    "over-long description": (("domain", "add", "new.org", "--description", "x" * 256), "",
                              "at most 255 characters"),
    "limit not an int": (("domain", "add", "new.org", "--max-aliases", "many"), "",
                         "invalid int value"),
    "edit unknown domain": (("domain", "edit", "nowhere.org", "--description", "x"), "",
                            "nowhere.org is not a domain of this server"),
    "total below usage": (("domain", "edit", "example.org", "--max-quota", "1G"), "",
                          "already hold 2G"),
    "disable unknown domain": (("domain", "disable", "nowhere.org"), "", "not a domain"),
    "delete domain with mailboxes": (("domain", "delete", "example.org"), "",
                                     "still has 1 mailbox"),
    "mailbox in unknown domain": (*_pw("mailbox", "add", "x@nowhere.org", "--password-stdin"),
                                  "nowhere.org is not a domain of this server"),
    "mailbox with bad address": (*_pw("mailbox", "add", "not-an-address", "--password-stdin"),
                                 "is not a mail address"),
    "mailbox with 65-char local part": (
        *_pw("mailbox", "add", f"{LONG_LOCAL}@example.org", "--password-stdin"),
        "is 65 characters; at most 64"),
    "mailbox that exists": (*_pw("mailbox", "add", "bob@example.org", "--password-stdin"),
                            "already a mailbox"),
    "mailbox that is an alias": (
        *_pw("mailbox", "add", "postmaster@example.org", "--password-stdin"),
        "already an alias"),
    "mailbox in an alias domain": (
        *_pw("mailbox", "add", "x@alias.example", "--password-stdin"),
        "is an alias domain of example.org"),
    "mailbox over the domain quota": (
        *_pw("mailbox", "add", "big@example.org", "--password-stdin", "--quota", "9G"),
        "does not fit"),
    "empty password": (("mailbox", "add", "x@example.org", "--password-stdin"), "\n",
                       "the password is empty"),
    "password over 72 bytes": (("mailbox", "add", "x@example.org", "--password-stdin"),
                               "x" * 73 + "\n", "at most 72 bytes"),
    "password too short": (("mailbox", "add", "x@example.org", "--password-stdin"), "a\n",
                           "Use at least 12 characters."),
    "passwd with the address's name": (
        ("mailbox", "passwd", "bob@example.org", "--password-stdin"), "bob-is-my-password\n",
        "Do not put your address's name in your password."),
    "password without --password-stdin": (("mailbox", "add", "x@example.org"),
                                          PASSWORD + "\n", "--password-stdin"),
    "password in argv": (("mailbox", "add", "x@example.org", "--password", "pw"), "",
                         "unrecognized arguments"),
    "passwd of unknown mailbox": (
        *_pw("mailbox", "passwd", "nobody@example.org", "--password-stdin"),
        "nobody@example.org is not a mailbox"),
    "mailbox quota no size": (("mailbox", "edit", "bob@example.org", "--quota", "banana"), "",
                              "is not a size"),
    "unlimited mailbox in limited domain": (
        ("mailbox", "edit", "bob@example.org", "--quota", "0"), "",
        "every mailbox needs a quota"),
    "list mailboxes of unknown domain": (("mailbox", "list", "nowhere.org"), "",
                                         "not a domain of this server"),
    "delete unknown mailbox": (("mailbox", "delete", "nobody@example.org"), "",
                               "is not a mailbox"),
    "alias to unknown local address": (
        ("alias", "add", "info@example.org", "nobody@example.org"), "",
        "neither a mailbox nor an alias"),
    "alias to itself": (("alias", "add", "info@example.org", "info@example.org"), "",
                        "cannot deliver to itself"),
    "alias that exists": (("alias", "add", "postmaster@example.org", "bob@example.org"), "",
                          "already an alias"),
    "second catch-all": (("alias", "add", "@example.org", "bob@example.org"), "",
                         "already the catch-all"),
    "alias without destinations": (("alias", "add", "info@example.org", ","), "",
                                    "at least one destination"),
    "edit unknown alias": (("alias", "edit", "nobody@example.org", "bob@example.org"), "",
                           "is not an alias"),
    "alias domain of itself": (("domainalias", "add", "example.org", "example.org"), "",
                               "cannot be an alias of itself"),
    "alias domain of unknown domain": (("domainalias", "add", "new.example", "nowhere.org"),
                                       "", "nowhere.org is not a domain of this server"),
    "alias domain that exists": (("domainalias", "add", "alias.example", "example.org"), "",
                                 "already exists"),
    "delete unknown alias domain": (("domainalias", "delete", "nowhere.org"), "",
                                    "not an alias domain"),
    "unknown action": (("domain", "frob", "example.org"), "", "invalid choice"),
}


@pytest.mark.parametrize(("args", "stdin", "message"), REFUSALS.values(), ids=REFUSALS.keys())
def test_it_refuses_bad_input_in_one_line_and_changes_nothing(cli, world, args, stdin,
                                                              message):
    before = db_state()

    with pytest.raises(CommandError) as refused:
        cli(*args, stdin=stdin)

    text = str(refused.value)
    assert message in text
    assert "\n" not in text.strip()
    assert PASSWORD not in text
    assert db_state() == before


@pytest.mark.parametrize("args", [
    ("domain", "edit", "example.org", "--description", "caf\udce9"),
    ("mailbox", "edit", "bob@example.org", "--name", "Ren\udce9e"),
], ids=["domain description", "mailbox name"])
def test_it_refuses_text_that_is_not_utf8(cli, world, args):
    before = db_state()

    with pytest.raises(CommandError):
        cli(*args)

    assert db_state() == before


def test_it_refuses_a_password_that_is_not_utf8(cli, example):
    before = db_state()

    with pytest.raises(CommandError):
        cli("mailbox", "add", "bob@example.org", "--password-stdin", stdin="\udcff\udcfepw\n")

    assert db_state() == before


# ---------------------------------------------------------------- audit


def test_it_audits_cli_actions_as_cli_user(cli, example):
    cli("domain", "edit", "example.org", "--description", "Changed")
    cli("mailbox", "add", "bob@example.org", "--password-stdin", stdin=PASSWORD + "\n")
    cli("mailbox", "passwd", "bob@example.org", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    cli("alias", "add", "@example.org", "bob@example.org")
    cli("domainalias", "add", "alias.example", "example.org")
    cli("domainalias", "delete", "alias.example")
    cli("mailbox", "delete", "bob@example.org")
    cli("domain", "delete", "example.org")

    rows = cli_audit()
    assert {row.action for row in rows} >= {
        "domain.update", "mailbox.create", "mailbox.password", "alias.create",
        "aliasdomain.create", "aliasdomain.delete", "mailbox.delete", "alias.delete",
        "domain.delete",
    }
    assert all(row.actor.startswith("cli:") and len(row.actor) > 4 for row in rows)
    dumped = json.dumps([[row.before, row.after] for row in rows])
    assert PASSWORD not in dumped
    assert NEW_PASSWORD not in dumped


# ---------------------------------------------------------------- the real command line


def _env(data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "MAILADMIN_DATA_DIR": str(data_dir)}
    # The subprocess uses its own SQLite file in data_dir, whatever this run uses.
    env.pop("MAILADMIN_DATABASE_URL", None)
    return env


def manage(data_dir: Path, *args: str, input: str | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_ROOT, env=_env(data_dir),
        capture_output=True, text=True, timeout=60, input=input,
        stdin=subprocess.DEVNULL if input is None else None,
    )


def succeeded(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def refused_cleanly(result: subprocess.CompletedProcess[str]) -> str:
    """The one line on stderr of a refused command."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def row_counts(data_dir: Path) -> dict[str, int]:
    with sqlite3.connect(data_dir / "mailadmin.sqlite3") as db:
        return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("domains", "users", "aliases", "alias_domains", "audit_log")}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A fresh data directory, migrated, with example.org and bob made through the CLI."""
    path = tmp_path_factory.mktemp("cli-data")
    succeeded(manage(path, "migrate", "--noinput", "-v0"))
    succeeded(manage(path, "domain", "add", "example.org", "--max-quota", "10G",
                     "--default-quota", "1G"))
    succeeded(manage(path, "mailbox", "add", "bob@example.org", "--password-stdin",
                     "--quota", "2G", input=PASSWORD + "\n"))
    return path


@pytest.mark.processes
class TestTheCommandLine:
    def test_it_prints_mailboxes_as_valid_json(self, data_dir):
        result = succeeded(manage(data_dir, "mailbox", "list", "--json"))

        rows = json.loads(result.stdout)
        assert [(r["email"], r["quota"], r["active"]) for r in rows] == [
            ("bob@example.org", 2 * GIB, True)]
        assert result.stderr == ""

    CLI_REFUSALS = {
        "unknown domain": (("mailbox", "add", "x@nowhere.org", "--password-stdin"),
                           "nowhere.org is not a domain of this server"),
        "bad address": (("mailbox", "add", "not-an-address", "--password-stdin"),
                        "is not a mail address"),
        "65-char local part": (("mailbox", "add", f"{LONG_LOCAL}@example.org",
                                "--password-stdin"), "65 characters; at most 64"),
        "quota banana": (("domain", "add", "new.org", "--max-quota", "banana",
                          "--default-quota", "1G"), "'banana' is not a size"),
        "delete domain with mailboxes": (("domain", "delete", "example.org"),
                                         "still has 1 mailbox"),
    }

    @pytest.mark.parametrize(("args", "message"), CLI_REFUSALS.values(),
                             ids=CLI_REFUSALS.keys())
    def test_it_fails_with_one_line_on_stderr(self, data_dir, args, message):
        before = row_counts(data_dir)

        result = manage(data_dir, *args, input=PASSWORD + "\n")

        line = refused_cleanly(result)
        assert line.startswith("CommandError: ")
        assert message in line
        assert result.stdout == ""
        assert PASSWORD not in result.stdout + result.stderr
        assert row_counts(data_dir) == before

    def test_it_asks_for_the_password_on_stdin_when_there_is_no_terminal(self, data_dir):
        before = row_counts(data_dir)

        result = manage(data_dir, "mailbox", "add", "x@example.org")

        assert "give the password on stdin with --password-stdin" in refused_cleanly(result)
        assert row_counts(data_dir) == before

    @pytest.mark.parametrize("args", [
        ("mailbox", "add", "alice@example.org", "--password-stdin", "--name", "Alice"),
        ("mailbox", "passwd", "bob@example.org", "--password-stdin"),
    ], ids=["add", "passwd"])
    def test_it_never_echoes_the_password(self, data_dir, args):
        result = succeeded(manage(data_dir, *args, input=NEW_PASSWORD + "\n"))

        assert result.stdout.startswith(("added alice@example.org", "password changed for"))
        assert NEW_PASSWORD not in result.stdout + result.stderr

    def test_it_audits_as_the_cli_user(self, data_dir):
        with sqlite3.connect(data_dir / "mailadmin.sqlite3") as db:
            actors = {row[0] for row in db.execute("SELECT actor FROM audit_log")}

        assert actors
        assert all(actor.startswith("cli:") for actor in actors), actors

    def test_it_refuses_a_password_that_is_not_utf8(self, data_dir):
        result = subprocess.run(
            [sys.executable, "manage.py", "mailbox", "add", "x@example.org", "--password-stdin"],
            cwd=PROJECT_ROOT, env=_env(data_dir), capture_output=True, timeout=60,
            input=b"\xff\xfepassword\n",
        )

        stderr = result.stderr.decode(errors="replace")
        assert result.returncode != 0
        assert "Traceback" not in stderr
        assert len(stderr.splitlines()) == 1

    def test_it_refuses_a_description_that_is_not_utf8(self, data_dir):
        result = subprocess.run(
            [sys.executable, "manage.py", "domain", "edit", "example.org", "--description",
             b"caf\xe9"],
            cwd=PROJECT_ROOT, env=_env(data_dir), capture_output=True, timeout=60,
            stdin=subprocess.DEVNULL,
        )

        stderr = result.stderr.decode(errors="replace")
        assert result.returncode != 0
        assert "Traceback" not in stderr
        assert len(stderr.splitlines()) == 1

    def test_it_reports_a_malformed_option_in_one_line(self, data_dir):
        result = manage(data_dir, "domain", "add", "new.org", "--max-mailboxes", "many")

        assert "invalid int value: 'many'" in refused_cleanly(result)
