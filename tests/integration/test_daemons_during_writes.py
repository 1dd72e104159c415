"""The mail daemons' lookups never wait for the panel's writes (issue 14).

Before WAL mode, a panel write too big for SQLite's page cache took the
database's exclusive lock until its commit: every Postfix lookup in the
meantime failed ("database is locked"; Postfix's sqlite: client sets no busy
timeout) and Dovecot refused logins with a temporary failure.
"""

import smtplib
import threading
import time

import pytest
from django.db import connection, transaction
from passlib.hash import bcrypt

from domains import services

pytestmark = pytest.mark.daemons

PW = "correct horse battery"
# Enough rows (and their audit entries) to spill SQLite's 2 MB page cache,
# which is what took the exclusive lock in rollback-journal mode.
ROWS = 8000
HOLD_SECONDS = 3.0


def test_lookups_and_logins_succeed_during_a_long_panel_write(stack):
    domain = services.create_domain(actor="t", name="example.org")
    services.create_mailbox(actor="t", email="bob@example.org", password=PW)
    cheap = "{BLF-CRYPT}" + bcrypt.using(ident="2y", rounds=4).hash("imported")
    rows = [services.MailboxImport(email=f"user{n}@example.org", password_hash=cheap)
            for n in range(ROWS)]
    # As between two requests: no panel connection is open when the daemons
    # first look, and the -wal and -shm files they need must be there.
    connection.close()
    assert stack.postmap("bob@example.org", "mailboxes.cf", as_postfix=True) == "1"

    holding, release, failures = threading.Event(), threading.Event(), []

    def write() -> None:
        try:
            with transaction.atomic():
                services.import_mailboxes(actor="t", domain=domain, rows=rows)
                holding.set()
                release.wait(HOLD_SECONDS)
        except Exception as error:  # reported by the main thread
            failures.append(error)
            holding.set()
        finally:
            connection.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert holding.wait(120) and not failures, failures
        started = time.monotonic()
        # The rows being written are not there yet; the committed ones are.
        assert stack.postmap("bob@example.org", "mailboxes.cf", as_postfix=True) == "1"
        assert stack.postmap("user1@example.org", "mailboxes.cf", as_postfix=True) is None
        stack.flush_auth_cache()  # the login must reach the database
        assert stack.auth_ok("bob@example.org", PW)
        # A running Postfix (smtpd, trivial-rewrite, proxymap, long-lived) too.
        with smtplib.SMTP("127.0.0.1", stack.ports["smtp"], timeout=30,
                          local_hostname="client.mailadmin.test") as smtp:
            smtp.ehlo("client.mailadmin.test")
            smtp.mail("sender@outside.test")
            assert smtp.rcpt("bob@example.org")[0] == 250, stack.tail("postfix.log")
        # All of it while the write still held its transaction: none of it waited.
        assert time.monotonic() - started < HOLD_SECONDS
        assert writer.is_alive()
    finally:
        release.set()
        writer.join(60)
    assert not failures, failures
    assert stack.postmap("user1@example.org", "mailboxes.cf", as_postfix=True) == "1"
