"""Long writes (imports, a forced domain delete) prepare their rows before their
transaction, so another panel write is not held while they do; what changes
meanwhile is asked again under the lock, and the write stays all or nothing.

On SQLite a write transaction holds the database's one write lock: a write
made while an import prepared would wait for the whole import if the
preparation ran inside it. Each test pauses a long write inside its
preparation (a hook on a step that runs once a row), writes meanwhile from
another thread, then lets the long write finish. Run on both databases.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connections
from django.utils import timezone
from passlib.hash import bcrypt

from core import audit
from core.models import AuditEntry
from domains import csv_io, services
from domains.models import Alias, Domain, ImportJob, KeptMaildir, Mailbox
from domains.services import domains as domain_services
from domains.services import imports

ACTOR = "admin@panel"
ROWS = 50
# Generous: each is only a bound against waiting for ever, not a timing claim.
WAIT = 20.0


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.MAILADMIN_BCRYPT_ROUNDS = 4


@pytest.fixture
def hashed() -> str:
    return "{BLF-CRYPT}" + bcrypt.using(rounds=4, ident="2y").hash("imported pw 1")


class Paused:
    """A long write run in a thread, held inside its preparation until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, target: Any, name: str,
                 write: Callable[[], Any]) -> None:
        self.preparing, self.go = threading.Event(), threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        real = getattr(target, name)

        def held(*args: Any, **kwargs: Any) -> Any:
            if not self.preparing.is_set():
                self.preparing.set()
                assert self.go.wait(WAIT), "never released"
            return real(*args, **kwargs)

        monkeypatch.setattr(target, name, held)
        self.thread = threading.Thread(target=self._run, args=(write,))

    def _run(self, write: Callable[[], Any]) -> None:
        try:
            self.result = write()
        except BaseException as exc:  # the test reads it
            self.error = exc
        finally:
            connections.close_all()

    @property
    def finished(self) -> bool:
        return not self.thread.is_alive()


@contextmanager
def paused(monkeypatch: pytest.MonkeyPatch, target: Any, name: str,
           write: Callable[[], Any]) -> Iterator[Paused]:
    """Start `write`; yield once it is inside its preparation; on leaving,
    release it and wait for it to end."""
    run = Paused(monkeypatch, target, name, write)
    run.thread.start()
    try:
        assert run.preparing.wait(WAIT), "the write never reached its preparation"
        yield run
    finally:
        run.go.set()
        run.thread.join(WAIT * 2)
    assert run.finished


def meanwhile(write: Callable[[], Any]) -> Any:
    """Run another panel write in a thread of its own (its own connection, as a
    request's) and return its result; fail if it is still waiting after WAIT s."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = write()
        except BaseException as exc:  # re-raised below
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), "the other write waited for the long write's preparation"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def mailbox_rows(domain: str, hashed: str) -> list[services.MailboxImport]:
    return [services.MailboxImport(email=f"user{n}@{domain}", password_hash=hashed)
            for n in range(ROWS)]


# ---------------------------------------------------------------- imports


@pytest.mark.django_db(transaction=True)
def test_a_panel_write_during_an_imports_preparation_goes_through(monkeypatch, hashed):
    domain = services.create_domain(actor=ACTOR, name="big.example")
    rows = mailbox_rows("big.example", hashed)
    with paused(monkeypatch, imports, "_text", lambda: services.import_mailboxes_with_state(
            actor=ACTOR, domain=domain, rows=rows, inactive=["user1@big.example"])) as run:
        meanwhile(lambda: services.create_domain(actor=ACTOR, name="meanwhile.example"))
        # Done while the import had not begun to write, let alone commit.
        assert not run.finished
        assert Domain.objects.filter(name="meanwhile.example").exists()
        assert not Mailbox.objects.filter(domain=domain).exists()
    assert run.error is None
    assert len(run.result) == ROWS
    assert Mailbox.objects.filter(domain=domain).count() == ROWS
    assert not Mailbox.objects.get(email="user1@big.example").active


@pytest.mark.django_db(transaction=True)
def test_the_csv_job_prepares_before_its_transaction_too(monkeypatch, hashed):
    domain = services.create_domain(actor=ACTOR, name="big.example")
    job = ImportJob.objects.create(
        domain=domain, kind=ImportJob.Kind.MAILBOXES, actor=ACTOR, total=ROWS,
        confirmed=timezone.now(),
        rows=[[f"user{n}@big.example", "", None, hashed, True] for n in range(ROWS)])
    with paused(monkeypatch, imports, "_text", lambda: csv_io.run_job(job.pk)) as run:
        meanwhile(lambda: services.create_domain(actor=ACTOR, name="meanwhile.example"))
        assert not run.finished
    assert run.error is None and run.result == ROWS
    job.refresh_from_db()
    assert (job.state, job.done) == ("done", ROWS)


@pytest.mark.django_db(transaction=True)
def test_an_address_taken_during_preparation_refuses_the_whole_import(monkeypatch, hashed):
    domain = services.create_domain(actor=ACTOR, name="big.example")
    services.create_mailbox(actor=ACTOR, email="target@big.example",
                            password="correct horse battery")
    audit_before = AuditEntry.objects.count()
    rows = mailbox_rows("big.example", hashed)
    with paused(monkeypatch, imports, "_text", lambda: services.import_mailboxes(
            actor=ACTOR, domain=domain, rows=rows)) as run:
        meanwhile(lambda: services.create_alias(
            actor=ACTOR, source="user7@big.example", destinations="target@big.example",
            checked_domains=None))
    assert isinstance(run.error, ValidationError)
    assert run.error.messages == ["user7@big.example already exists."]
    # Nothing of the import was written; the alias made meanwhile stays.
    assert list(Mailbox.objects.values_list("email", flat=True)) == ["target@big.example"]
    assert Alias.objects.filter(source="user7@big.example").exists()
    assert AuditEntry.objects.count() == audit_before + 1  # the alias's alone
    assert not AuditEntry.objects.filter(action__in=["domain.import", "mailbox.import"])


@pytest.mark.django_db(transaction=True)
def test_a_limit_lowered_during_preparation_refuses_the_import(monkeypatch, hashed):
    domain = services.create_domain(actor=ACTOR, name="big.example")
    rows = mailbox_rows("big.example", hashed)
    with paused(monkeypatch, imports, "_text", lambda: services.import_mailboxes(
            actor=ACTOR, domain=domain, rows=rows)):
        meanwhile(lambda: services.update_domain(actor=ACTOR, domain=domain,
                                                 max_mailboxes=ROWS - 1))
    assert not Mailbox.objects.exists()
    assert not AuditEntry.objects.filter(action="domain.import").exists()


@pytest.mark.django_db(transaction=True)
def test_a_destination_deleted_during_preparation_refuses_an_alias_import(monkeypatch):
    domain = services.create_domain(actor=ACTOR, name="big.example")
    target = services.create_mailbox(actor=ACTOR, email="target@big.example",
                                     password="correct horse battery")
    rows = [services.AliasImport(source=f"list{n}@big.example",
                                 destinations="target@big.example") for n in range(ROWS)]
    with paused(monkeypatch, imports, "_parse_destinations", lambda: services.import_aliases(
            actor=ACTOR, domain=domain, rows=rows, checked_domains=None)) as run:
        meanwhile(lambda: services.delete_mailbox(actor=ACTOR, mailbox=target))
    assert isinstance(run.error, ValidationError)
    assert run.error.messages == ["target@big.example is in a domain of this server but "
                                  "neither a mailbox nor an alias."]
    assert not Alias.objects.exists()


@pytest.mark.django_db
def test_imported_rows_are_audited_as_one_at_a_time_would_be(hashed):
    """The rows written from prepared SQL say what audit.entry would have."""
    domain = services.create_domain(actor=ACTOR, name="big.example", default_quota="1G")
    created = services.import_mailboxes_with_state(
        actor=ACTOR, domain=domain, rows=[
            services.MailboxImport(email="ann@big.example", password_hash=hashed, name="Ann"),
            services.MailboxImport(email="ben@big.example", password_hash=hashed, quota=0)],
        inactive=["ben@big.example"])
    [event] = AuditEntry.objects.filter(action="domain.import")
    assert event.after == {"kind": "mailboxes", "rows": 2, "created": 2, "disabled": 1}
    for mailbox in created:
        stored = Mailbox.objects.get(pk=mailbox.pk)
        assert (stored.email, stored.active) == (mailbox.email, mailbox.active)
        [row] = AuditEntry.objects.filter(action="mailbox.import", object_id=stored.pk)
        expected = audit.entry(actor=ACTOR, action="mailbox.import", obj=stored, domain=domain,
                               after={**audit.snapshot(stored), "active": True}, parent=event)
        for column in ("actor", "object_type", "object_repr", "domain", "domain_ref",
                       "before", "after", "parent"):
            assert getattr(row, column) == getattr(expected, column), column
    [off] = AuditEntry.objects.filter(action="mailbox.disable")
    assert (off.object_repr, off.before, off.after, off.parent) == (
        "ben@big.example", {"active": True}, {"active": False}, event.pk)
    [alias] = services.import_aliases(
        actor=ACTOR, domain=domain, checked_domains=None,
        rows=[services.AliasImport(source="team@big.example", destinations="ann@big.example")])
    [row] = AuditEntry.objects.filter(action="alias.import")
    assert row.after == audit.snapshot(Alias.objects.get(pk=alias.pk))


# ---------------------------------------------------------------- forced delete


@pytest.mark.django_db(transaction=True)
def test_a_mailbox_created_while_a_forced_delete_plans_is_deleted_and_kept(
        monkeypatch, hashed, settings):
    """The delete reads again under its lock: what was added meanwhile goes too,
    with its kept-Maildir row and audit row (nothing a user had is lost)."""
    settings.MAILADMIN_VMAIL_DIR = "/srv/mail"
    doomed = services.create_domain(actor=ACTOR, name="doomed.example")
    services.import_mailboxes(actor=ACTOR, domain=doomed, rows=mailbox_rows("doomed.example",
                                                                             hashed))
    with paused(monkeypatch, domain_services, "_plan_deletion", lambda: services.delete_domain(
            actor=ACTOR, domain=doomed, force=True)) as run:
        meanwhile(lambda: services.create_domain(actor=ACTOR, name="meanwhile.example"))
        late = meanwhile(lambda: services.create_mailbox(
            actor=ACTOR, email="late@doomed.example", password="correct horse battery"))
        assert not run.finished
    assert run.error is None
    assert "/srv/mail/doomed.example/late" in run.result and len(run.result) == ROWS + 1
    assert not Domain.objects.filter(name="doomed.example").exists()
    assert not Mailbox.objects.filter(email__endswith="@doomed.example").exists()
    kept = set(KeptMaildir.objects.values_list("address", flat=True))
    assert len(kept) == ROWS + 1 and "late@doomed.example" in kept
    [event] = AuditEntry.objects.filter(action="domain.delete")
    assert event.after == {"forced": True, "maildirs_kept": ROWS + 1}
    [row] = AuditEntry.objects.filter(action="mailbox.delete", object_id=late.pk)
    assert row.parent == event.pk
    assert row.before == audit.snapshot(late)
    assert row.after == {"maildir_kept": "/srv/mail/doomed.example/late"}


@pytest.mark.django_db(transaction=True)
def test_an_unforced_delete_refuses_a_mailbox_created_while_it_planned(monkeypatch):
    domain = services.create_domain(actor=ACTOR, name="empty.example")
    with paused(monkeypatch, domain_services, "_plan_deletion", lambda: services.delete_domain(
            actor=ACTOR, domain=domain)) as run:
        meanwhile(lambda: services.create_mailbox(
            actor=ACTOR, email="late@empty.example", password="correct horse battery"))
    assert isinstance(run.error, ValidationError)
    assert "still has 1 mailbox" in run.error.messages[0]
    assert Mailbox.objects.filter(email="late@empty.example").exists()
    assert not AuditEntry.objects.filter(action="domain.delete").exists()


@pytest.mark.django_db
def test_a_forced_delete_takes_every_row_kept_on_its_mailboxes():
    """Every table pointing at a mailbox, those with no reverse name too (a Sieve
    script's related_name is "+"), goes with it, as Django's cascade took it."""
    from apppasswords import services as app_passwords
    from apppasswords.models import AppPassword
    from vacation import services as vacation
    from vacation.models import MailRules, SieveScript

    domain = services.create_domain(actor=ACTOR, name="sieve.example")
    mailbox = services.create_mailbox(actor=ACTOR, email="away@sieve.example",
                                      password="correct horse battery")
    vacation.set_auto_reply(actor=ACTOR, mailbox=mailbox, enabled=True, subject="Away",
                            text="Back soon.")
    app_passwords.create_app_password(actor=ACTOR, mailbox=mailbox, name="phone",
                                      protocols=["imap"])
    assert SieveScript.objects.filter(mailbox=mailbox).exists()
    services.delete_domain(actor=ACTOR, domain=domain, force=True)
    assert not Mailbox.objects.filter(pk=mailbox.pk).exists()
    assert not SieveScript.objects.exists() and not MailRules.objects.exists()
    assert not AppPassword.objects.exists()



# What changes between a preparation that passed and its write: the tests above
# change it while the preparation runs, before its own check of the tables, so
# they pass on that check alone; these prove write_import asks again.


def _refused_at_write(prepared: imports.PreparedImport, *messages: str) -> None:
    audit_before = AuditEntry.objects.count()
    with pytest.raises(ValidationError) as refused:
        services.write_import(prepared=prepared)
    if messages:
        assert refused.value.messages == list(messages)
    assert AuditEntry.objects.count() == audit_before
    assert not AuditEntry.objects.filter(action__in=["domain.import", "mailbox.import",
                                                     "alias.import"]).exists()


@pytest.mark.django_db
def test_a_second_import_written_first_refuses_the_prepared_one_whole(hashed):
    domain = services.create_domain(actor=ACTOR, name="twice.example")
    prepared = services.prepare_mailbox_import(actor=ACTOR, domain=domain,
                                               rows=mailbox_rows("twice.example", hashed))
    services.import_mailboxes(actor=ACTOR, domain=domain, rows=[
        services.MailboxImport(email="user9@twice.example", password_hash=hashed)])
    AuditEntry.objects.all().delete()
    _refused_at_write(prepared, "user9@twice.example already exists.")
    assert list(Mailbox.objects.values_list("email", flat=True)) == ["user9@twice.example"]


@pytest.mark.django_db
def test_a_mailbox_deleted_after_preparation_keeps_its_maildir_from_the_import(hashed):
    domain = services.create_domain(actor=ACTOR, name="kept.example")
    rows = mailbox_rows("kept.example", hashed)
    prepared = services.prepare_mailbox_import(actor=ACTOR, domain=domain, rows=rows[1:])
    gone = services.create_mailbox(actor=ACTOR, email="user1@kept.example",
                                   password="correct horse battery")
    services.delete_mailbox(actor=ACTOR, mailbox=gone)  # after the preparation's check
    AuditEntry.objects.all().delete()
    _refused_at_write(prepared, KeptMaildir.refusal("user1@kept.example"))
    assert not Mailbox.objects.exists()


@pytest.mark.django_db
def test_limits_lowered_after_preparation_refuse_the_write(hashed):
    domain = services.create_domain(actor=ACTOR, name="full.example")
    prepared = services.prepare_mailbox_import(actor=ACTOR, domain=domain,
                                               rows=mailbox_rows("full.example", hashed))
    services.update_domain(actor=ACTOR, domain=domain, max_mailboxes=ROWS - 1)
    _refused_at_write(prepared)
    assert not Mailbox.objects.exists()


@pytest.mark.django_db
def test_a_destination_deleted_after_preparation_refuses_the_alias_write():
    domain = services.create_domain(actor=ACTOR, name="dest.example")
    target = services.create_mailbox(actor=ACTOR, email="target@dest.example",
                                     password="correct horse battery")
    prepared = services.prepare_alias_import(
        actor=ACTOR, domain=domain, checked_domains=None,
        rows=[services.AliasImport(source=f"list{n}@dest.example",
                                   destinations="target@dest.example") for n in range(ROWS)])
    services.delete_mailbox(actor=ACTOR, mailbox=target)
    AuditEntry.objects.all().delete()
    _refused_at_write(prepared, "target@dest.example is in a domain of this server but "
                                "neither a mailbox nor an alias.")
    assert not Alias.objects.exists()


@pytest.mark.django_db
def test_a_domain_deleted_after_preparation_refuses_the_write(hashed):
    domain = services.create_domain(actor=ACTOR, name="gone.example")
    prepared = services.prepare_mailbox_import(actor=ACTOR, domain=domain,
                                               rows=mailbox_rows("gone.example", hashed))
    services.delete_domain(actor=ACTOR, domain=domain)
    AuditEntry.objects.all().delete()
    _refused_at_write(prepared, "The domain gone.example no longer exists.")
    assert not Mailbox.objects.exists()
