"""A write that waited out SQLite's busy timeout behind a long one is a clear 503, not a 500."""

import threading

import pytest
from django.db import OperationalError, connection, transaction
from django.test import Client

from domains import services
from domains.models import Domain

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_locked_database_is_a_503_page(monkeypatch):
    if connection.vendor != "sqlite":
        # MariaDB's lock waits are per row (innodb_lock_wait_timeout), not this page's case.
        assert connection.vendor == "mysql"
        return
    from accounts.services import create_admin

    boss = create_admin(actor="t", username="boss", password="a long admin passphrase",
                        superadmin=True)
    client = Client(raise_request_exception=False)
    client.force_login(boss)
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.2)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        # Another process's long write: the write lock from BEGIN IMMEDIATE on.
        try:
            with transaction.atomic():
                services.create_domain(actor="t", name="long.example")
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    writer = threading.Thread(target=hold)
    writer.start()
    try:
        assert holding.wait(30)
        connection.close()  # the request's connection opens anew, with the short timeout
        response = client.post("/domains/new/", {
            "name": "waiting.example", "max_mailboxes": 0, "max_aliases": 0, "max_quota": "0",
            "default_quota": "0"})
    finally:
        release.set()
        writer.join(30)
    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    text = response.content.decode()
    assert "The database is busy" in text and "0.2 seconds" in text
    assert not Domain.objects.filter(name="waiting.example").exists()


def test_other_database_errors_are_not_hidden():
    from mailadmin.busy import is_busy

    assert not is_busy(OperationalError("no such table: users"))
    assert not is_busy(ValueError("database is locked"))
