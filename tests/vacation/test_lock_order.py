"""The auto-reply's refresh locks mailbox rows inside the alias writers' transactions,
after their domain's row: every other writer must lock in that order (domain, then
mailbox) or not hold a mailbox while it waits for its domain, else MariaDB ends one of
the two with a deadlock error (a 500) where it should only have waited."""

import threading
import time

import pytest
from django.db import close_old_connections, connections, transaction

from apppasswords import services as apppasswords
from core.actor import Actor
from domains import services as domains
from domains.models import Domain
from vacation import services


@pytest.mark.django_db(transaction=True)
def test_an_app_password_made_while_an_alias_to_its_mailbox_is_written_waits():
    domain = domains.create_domain(actor="t", name="locks.example")
    bob = domains.create_mailbox(actor="t", email="bob@locks.example",
                                 password="correct horse battery")
    errors: list[BaseException] = []
    domain_held = threading.Event()

    def alias_writer() -> None:
        # What create_alias does: the alias's domain first, then (the refresh) the
        # mailboxes it lists. The pause lets the other writer come in between.
        try:
            with transaction.atomic():
                Domain.objects.select_for_update().get(pk=domain.pk)
                domain_held.set()
                time.sleep(1.5)
                services.refresh_reply_addresses(mailboxes={bob.email}, domain=None)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    def app_password_maker() -> None:
        try:
            domain_held.wait(10)
            apppasswords.create_app_password(actor=Actor.account("t"), mailbox=bob,
                                             name="phone", protocols=["imap"])
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=alias_writer), threading.Thread(target=app_password_maker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    close_old_connections()
    assert errors == []
    assert bob.app_passwords.count() == 1
