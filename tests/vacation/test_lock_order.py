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
from domains.models import AliasDomain, Domain
from vacation import services
from vacation.models import SieveScript


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


@pytest.mark.django_db(transaction=True)
def test_a_reply_saved_while_an_alias_domain_is_made_lists_it():
    """The alias-domain writer holds the domain's row while it rewrites the domain's
    scripts; a save of the rules takes that row first, so it waits, then sees the
    new alias domain (else its script, written from before, would miss it)."""
    domain = domains.create_domain(actor="t", name="later.example")
    bob = domains.create_mailbox(actor="t", email="bob@later.example",
                                 password="correct horse battery")
    errors: list[BaseException] = []
    domain_held = threading.Event()

    def alias_domain_writer() -> None:
        try:
            with transaction.atomic():  # what create_alias_domain does, with a pause
                locked = Domain.objects.select_for_update().get(pk=domain.pk)
                AliasDomain.objects.create(name="alias-later.example", target=locked)
                domain_held.set()
                time.sleep(1.5)
                services.refresh_reply_addresses(mailboxes=(), domain=locked)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    def saver() -> None:
        try:
            domain_held.wait(10)
            services.set_auto_reply(actor=Actor.account("t"), mailbox=bob, enabled=True,
                                    subject="Away", text="Back soon.")
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=alias_domain_writer), threading.Thread(target=saver)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    close_old_connections()
    assert errors == []
    assert "bob@alias-later.example" in SieveScript.objects.get(mailbox=bob).script
