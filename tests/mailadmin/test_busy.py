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
    assert "The database is busy" in text and "Mail delivery and sign-ins are not affected" in text
    assert not Domain.objects.filter(name="waiting.example").exists()


def test_other_database_errors_are_not_hidden():
    """A bug's OperationalError (a missing table after a failed upgrade) stays a 500 with
    its traceback; only a database that cannot be reached or is held is a 503."""
    from core.logs import database_busy, database_unreachable

    for bug in (OperationalError("no such table: users"),
                OperationalError(1054, "Unknown column 'x' in 'field list'")):
        assert not database_busy(bug) and not database_unreachable(bug)
    assert not database_busy(ValueError("database is locked"))
    assert database_busy(OperationalError("database is locked"))
    assert database_busy(OperationalError(1205, "Lock wait timeout exceeded"))
    assert database_unreachable(OperationalError(2003, "Can't connect to MySQL server"))
    assert database_unreachable(OperationalError(2013, "Lost connection during query"))
    assert database_unreachable(OperationalError("unable to open database file"))


def test_a_bug_in_a_view_is_still_a_500():
    from django.test import RequestFactory

    from core.outage import OutageMiddleware

    middleware = OutageMiddleware(lambda request: None)  # type: ignore[arg-type, return-value]
    request = RequestFactory().get("/")
    assert middleware.process_exception(request, OperationalError("no such table: x")) is None
