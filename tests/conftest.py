import io
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.http import HttpRequest
from django.test import Client

from accounts import services as account_services
from domains import services
from domains.models import Domain, Mailbox

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


def change_host(**fields: Any) -> None:
    """A change to the mail host after it was first read (its row, not the settings)."""
    from mailhost.models import MailHost

    MailHost.current()
    MailHost.objects.update(**fields)
