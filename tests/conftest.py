import io
import os
import subprocess
import sys
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.http import HttpRequest
from django.test import Client

from accounts import services as account_services
from domains import services
from domains.models import Domain, Mailbox

# Mailbox passwords are bcrypt at cost 4 in tests (fast_hashing below); this
# gives manage.py, Celery and settings loaded in a process of their own the
# same (a test that needs another cost sets it, as test_settings.py does).
os.environ.setdefault("MAILADMIN_BCRYPT_ROUNDS", "4")

MAILBOX_PASSWORD = "correct horse battery"
ADMIN_PASSWORD = "admin passphrase 123"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Every test starts without the mail host row its migration made, so the row
    is made from that test's settings when first read (MailHost.current()).

    Tests on transactions see the same: the flush after each one empties it.
    """
    from mailhost.models import MailHost

    with django_db_blocker.unblock():
        MailHost.objects.all().delete()


# What makes a test need the database engine: pytest-django lets no test reach
# the database without one of these (a django_db marker or one of its fixtures;
# `world`, `stack` and the like ask for them), so a test with none of them runs
# the same on MariaDB and on SQLite.
DB_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences",
               "django_db_serialized_rollback", "live_server", "django_db_setup"}
# bin/test sets this for its MariaDB run: the tests that need no database
# engine run (once) in its SQLite run, as in a plain `pytest`, and are deselected.
ONLY_DB_TESTS = "MAILADMIN_TESTS_ONLY_DB"


def needs_database(item: pytest.Item) -> bool:
    return (item.get_closest_marker("django_db") is not None
            or item.get_closest_marker("both_backends") is not None
            or bool(DB_FIXTURES & set(getattr(item, "fixturenames", ()))))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        # Real daemons are processes too: `-m processes` selects every test that starts one.
        if item.get_closest_marker("daemons") is not None:
            item.add_marker(pytest.mark.processes)
    if os.environ.get(ONLY_DB_TESTS) != "1":
        return
    kept = [item for item in items if needs_database(item)]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if not needs_database(item)])
        items[:] = kept


@pytest.fixture(autouse=True)
def processes_are_marked(request, monkeypatch):
    """A test that starts a process (a binary, manage.py, a daemon) says so with the
    `processes` marker (implied by `daemons`): one that does not is stopped here."""
    if request.node.get_closest_marker("processes") is not None:
        return

    def refuse(self, args, *rest, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError(
            f"{request.node.nodeid} starts {args!r}: mark it @pytest.mark.processes")

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)


@pytest.fixture(autouse=True)
def fast_admin_hashing(request, settings):
    """Admin passwords with MD5 instead of PBKDF2: the `world` fixture's three admins
    cost ~2 s under load with PBKDF2. A test of Django's own hashing keeps the default
    with the real_password_hasher marker (none asserts on it today; production
    settings are checked in a process of their own, test_security.py). Mailbox
    hashes are passlib's, at their own costs: see fast_hashing."""
    if request.node.get_closest_marker("real_password_hasher") is None:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def empty_cache():
    """The dashboard caches its totals; every test starts from the database."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def dns_on_loopback_only(settings):
    """No test asks a real resolver: DNS goes to a closed loopback port unless a
    test points it at its own server (tests/integration/dnsserver.py)."""
    settings.MAILADMIN_DNS_RESOLVERS = ["127.0.0.1@9"]
    settings.MAILADMIN_DNS_TIMEOUT = 0.2
    settings.MAILADMIN_DNS_TRIES = 1
    settings.MAILADMIN_DNSBL_ZONES = ["zen.dnsbl.test"]
    settings.MAILADMIN_DNSBL_DOMAIN_ZONES = ["dbl.dnsbl.test"]


@pytest.fixture(autouse=True)
def no_root_helper(settings):
    """No root helper on a test machine (MAILADMIN_HELPER_COMMAND `none`): a
    password change does not try sudo for Dovecot's auth cache. Tests of the
    helper, and of the flush against the real Dovecot, set their own command."""
    settings.MAILADMIN_HELPER_COMMAND = []


@pytest.fixture
def cli(monkeypatch):
    """Run a command as `manage.py ARGS...` would; returns what it printed."""

    def run(*args: str, stdin: str = "") -> str:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        out = io.StringIO()
        call_command(*args, stdout=out, stderr=io.StringIO())
        return out.getvalue()

    return run


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    """bcrypt at cost 4 in tests; production uses MAILADMIN_BCRYPT_ROUNDS (12)."""
    settings.MAILADMIN_BCRYPT_ROUNDS = 4


@dataclass
class World:
    """Two domains, their admins, a mailbox user in each, and a superadmin."""

    a: Domain
    b: Domain
    bob: Mailbox  # in a
    carol: Mailbox  # in b
    superadmin: User
    admin_a: User
    admin_b: User

    def client_for(self, persona: str) -> Client:
        client = Client()
        if persona == "superadmin":
            client.force_login(self.superadmin)
        elif persona == "admin_a":
            client.force_login(self.admin_a)
        elif persona == "admin_b":
            client.force_login(self.admin_b)
        elif persona == "mailbox":
            # A request, as django-axes's backend needs one to count the attempt.
            assert client.login(request=HttpRequest(), username=self.bob.email,
                                password=MAILBOX_PASSWORD)
        else:
            assert persona == "anonymous"
        return client


@pytest.fixture
def world(db) -> World:
    a = services.create_domain(actor="t", name="a.example", max_mailboxes=3)
    b = services.create_domain(actor="t", name="b.example")
    bob = services.create_mailbox(actor="t", email="bob@a.example", password=MAILBOX_PASSWORD)
    carol = services.create_mailbox(actor="t", email="carol@b.example",
                                    password=MAILBOX_PASSWORD)
    services.create_alias(actor="t", source="info@a.example", destinations="bob@a.example",
                          checked_domains=None)
    return World(
        a=a, b=b, bob=bob, carol=carol,
        superadmin=account_services.create_admin(
            actor="t", username="root@admin.test", password=ADMIN_PASSWORD, superadmin=True),
        admin_a=account_services.create_admin(
            actor="t", username="alice@a.example", password=ADMIN_PASSWORD, domains=[a]),
        admin_b=account_services.create_admin(
            actor="t", username="bert@b.example", password=ADMIN_PASSWORD, domains=[b]),
    )


def apps_at(app_label: str, migration: str) -> Any:
    """The models as they stood right after `migration`, for testing a data migration."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    return MigrationLoader(connection).project_state((app_label, migration)).apps


# What a data migration's function reads its database from (schema_editor.connection.alias):
# the test database, as `migrate` would hand it.
EDITOR = SimpleNamespace(connection=SimpleNamespace(alias="default"))


def change_host(**fields: Any) -> None:
    """A change to the mail host after it was first read (its row, not the settings)."""
    from mailhost.models import MailHost

    MailHost.current()
    MailHost.objects.update(**fields)
