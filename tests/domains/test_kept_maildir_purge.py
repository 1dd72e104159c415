"""Kept Maildirs after the delete (issue 10, section 4): restore with the mail,
purge now, and removal by the mail host's agent after the grace period.

The agent's removal goes through the root helper; here it is replaced by a
stand-in that records its calls (test_kept_maildir_removal.py runs the real
helper). Nothing is removed that the panel did not record as kept and open.
"""

from __future__ import annotations

import datetime
import html
import re

import pytest
from celery.schedules import crontab
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from core import jobs
from core.actor import Actor
from core.models import AuditEntry
from domains import selectors, services
from domains.models import KeptMaildir, Mailbox
from mailhost import privileged
from tests.conftest import change_host

ROOT = Actor.account("root@admin.test")
NEW_PASSWORD = "Tr0ubadour horse staple"
PATH = "/var/vmail/b.example/carol"


@pytest.fixture
def sent(monkeypatch):
    """What was handed to the agent: (task, args, options)."""
    calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []
    monkeypatch.setattr(jobs, "enqueue_on_commit",
                        lambda name, *args, **options: calls.append((name, args, options)))
    return calls


@pytest.fixture
def helper(monkeypatch):
    """The root helper, replaced: records each call; `refuse` makes it fail."""

    class Stand:
        calls: list[tuple[str, ...]] = []
        refuse = ""

        def __call__(self, verb: str, *args: str) -> str:
            self.calls.append((verb, *args))
            if self.refuse:
                raise privileged.HelperError(self.refuse)
            return f"removed {args[0]}\n"

    stand = Stand()
    stand.calls = []
    monkeypatch.setattr(privileged, "run_helper", stand)
    return stand


@pytest.fixture
def kept(world, settings) -> KeptMaildir:
    settings.MAILADMIN_VMAIL_DIR = "/var/vmail"
    services.delete_mailbox(actor=ROOT, mailbox=world.carol)
    return KeptMaildir.objects.get()


def kept_row(address: str, days_ago: float, **fields) -> KeptMaildir:
    local, domain = address.split("@")
    return KeptMaildir.objects.create(
        address=address, path=f"/var/vmail/{domain}/{local}", domain_ref=None,
        deleted_at=timezone.now() - datetime.timedelta(days=days_ago), **fields)


def text(response) -> str:
    return html.unescape(response.content.decode())


# ---------------------------------------------------------------- restore


def test_restore_makes_the_mailbox_again_with_the_kept_maildir(kept, sent):
    mailbox = services.restore_kept_maildir(actor=ROOT, kept=kept, password=NEW_PASSWORD)

    assert Mailbox.objects.get(email="carol@b.example").pk == mailbox.pk
    kept.refresh_from_db()
    assert kept.reused_at is not None and kept.removed_at is None
    rows = AuditEntry.objects.filter(action="mailbox.create", object_id=mailbox.pk)
    assert [(r.actor, r.after["maildir_reused"]) for r in rows] == [
        ("root@admin.test", PATH)]
    assert services.maildir_path(mailbox.email) == PATH
    assert sent == []


def test_restore_is_refused_when_the_row_is_not_open(kept):
    services.forget_kept_maildir(actor=ROOT, address="carol@b.example")
    with pytest.raises(ValidationError, match=re.escape("is already removed")):
        services.restore_kept_maildir(actor=ROOT, kept=kept, password=NEW_PASSWORD)
    assert not Mailbox.objects.filter(email="carol@b.example").exists()


def test_a_restored_maildir_cannot_be_restored_twice(kept):
    services.restore_kept_maildir(actor=ROOT, kept=kept, password=NEW_PASSWORD)
    with pytest.raises(ValidationError, match=re.escape("was given to a mailbox again")):
        services.restore_kept_maildir(actor=ROOT, kept=kept, password=NEW_PASSWORD)


def test_restore_is_refused_while_the_address_is_an_alias(kept, world):
    services.create_alias(actor=ROOT, source="carol@b.example", destinations="bob@a.example",
                          checked_domains=None)
    with pytest.raises(ValidationError) as refused:
        services.restore_kept_maildir(actor=ROOT, kept=kept, password=NEW_PASSWORD)
    assert refused.value.messages == [
        "carol@b.example is in use again: delete that mailbox or alias first, or purge "
        "this Maildir."]
    assert KeptMaildir.objects.get().is_open


def test_restore_is_refused_while_the_domain_is_disabled(kept, world):
    services.set_domain_active(actor=ROOT, domain=world.b, active=False)
    with pytest.raises(ValidationError, match=re.escape("b.example is disabled")):
        services.restore_kept_maildir(actor=ROOT, kept=kept, password=NEW_PASSWORD)


def test_restore_is_refused_when_the_domain_is_gone(kept, world):
    services.delete_domain(actor=ROOT, domain=world.b, force=True)
    with pytest.raises(ValidationError, match=re.escape("The domain of carol@b.example is gone")):
        services.restore_kept_maildir(actor=ROOT, kept=kept, password=NEW_PASSWORD)
    # A new domain of the name is another tenant: reserving hands the row over.
    services.create_domain(actor=ROOT, name="b.example", kept_maildirs="reserve")
    kept.refresh_from_db()
    services.restore_kept_maildir(actor=ROOT, kept=kept, password=NEW_PASSWORD)
    assert Mailbox.objects.filter(email="carol@b.example").exists()


def test_restore_is_refused_when_the_maildir_would_not_be_the_home(kept):
    change_host(vmail_dir="/srv/vmail")
    moved = re.escape("/srv/vmail/b.example/carol, not in " + PATH)
    with pytest.raises(ValidationError, match=moved):
        services.restore_kept_maildir(actor=ROOT, kept=kept, password=NEW_PASSWORD)


def test_restore_checks_the_password_policy(kept):
    with pytest.raises(ValidationError):
        services.restore_kept_maildir(actor=ROOT, kept=kept, password="short")
    assert KeptMaildir.objects.get().is_open


# ---------------------------------------------------------------- purge


def test_purge_hands_the_recorded_path_to_the_hosts_queue(kept, sent):
    change_host(mail_hostname="MX1.example.org")

    services.purge_kept_maildir(actor=ROOT, kept=kept)

    assert sent == [("domains.remove_kept_maildir", (kept.pk, PATH),
                     {"queue": "host.mx1.example.org"})]
    kept.refresh_from_db()
    assert kept.purge_requested_at is not None and kept.is_open
    row = AuditEntry.objects.get(action="mailbox.maildir_purge")
    # Superadmins only: the domain's name, not its id.
    assert (row.actor, row.domain, row.domain_ref, row.after["path"]) == (
        "root@admin.test", "b.example", None, PATH)


def test_purge_again_asks_again(kept, sent):
    services.purge_kept_maildir(actor=ROOT, kept=kept)
    services.purge_kept_maildir(actor=ROOT, kept=kept)
    assert len(sent) == 2
    assert AuditEntry.objects.filter(action="mailbox.maildir_purge").count() == 2


def test_purge_is_refused_when_the_row_is_not_open(kept, sent):
    services.restore_kept_maildir(actor=ROOT, kept=kept, password=NEW_PASSWORD)
    with pytest.raises(ValidationError, match=re.escape("was given to a mailbox again")):
        services.purge_kept_maildir(actor=ROOT, kept=kept)
    assert sent == []


def test_the_task_is_routed_to_the_hosts_queue(kept, monkeypatch,
                                               django_capture_on_commit_callbacks):
    from domains import tasks

    routed = []
    monkeypatch.setattr(tasks.remove_kept_maildir, "apply_async",
                        lambda args, **options: routed.append((args, options)))
    with django_capture_on_commit_callbacks(execute=True):
        services.purge_kept_maildir(actor=ROOT, kept=kept)
    assert routed == [((kept.pk, PATH), {"queue": MailHostQueue.now()})]


class MailHostQueue:
    @staticmethod
    def now() -> str:
        from mailhost.models import MailHost

        return MailHost.current().queue


# ---------------------------------------------------------------- the grace period


def test_the_sweep_hands_over_only_open_maildirs_past_the_grace_period(db, sent, settings):
    settings.MAILADMIN_KEPT_MAILDIR_DAYS = 30
    old = kept_row("old@a.example", 31)
    kept_row("young@a.example", 29)
    kept_row("reused@a.example", 90, reused_at=timezone.now())
    kept_row("removed@a.example", 90, removed_at=timezone.now())
    asked = kept_row("asked@a.example", 1, purge_requested_at=timezone.now(),
                     removal_error="refused: it does not exist")

    assert services.purge_expired_kept_maildirs() == 2

    assert sorted(args for _name, args, _options in sent) == sorted(
        [(old.pk, old.path), (asked.pk, asked.path)])
    # One audit row for the newly expired one; the retried one was audited when asked.
    assert [(r.actor, r.object_id) for r in AuditEntry.objects.filter(
        action="mailbox.maildir_purge")] == [("beat", old.pk)]
    # The earlier failure stays shown until the next outcome.
    asked.refresh_from_db()
    assert asked.removal_error == "refused: it does not exist"


def test_the_sweep_is_idempotent(db, sent):
    kept_row("old@a.example", 31)
    assert services.purge_expired_kept_maildirs() == 1
    first = KeptMaildir.objects.get().purge_requested_at
    assert services.purge_expired_kept_maildirs() == 1
    assert KeptMaildir.objects.get().purge_requested_at == first
    assert AuditEntry.objects.filter(action="mailbox.maildir_purge").count() == 1
    assert len(sent) == 2 and sent[0] == sent[1]


def test_the_grace_period_is_a_setting(db, sent, settings):
    settings.MAILADMIN_KEPT_MAILDIR_DAYS = 7
    row = kept_row("week@a.example", 8)
    assert services.purge_expired_kept_maildirs() == 1
    assert selectors.kept_maildir_expiry(row) == row.deleted_at + datetime.timedelta(days=7)


def test_the_sweep_is_scheduled_daily():
    entry = django_settings.CELERY_BEAT_SCHEDULE["domains-purge-expired-kept-maildirs"]
    assert entry["task"] == "domains.purge_expired_kept_maildirs"
    assert isinstance(entry["schedule"], crontab)
    assert django_settings.MAILADMIN_KEPT_MAILDIR_DAYS == 30


# ---------------------------------------------------------------- the agent's removal


def test_the_removal_runs_the_helper_on_the_recorded_path_and_records_it(kept, sent, helper):
    services.purge_kept_maildir(actor=ROOT, kept=kept)

    assert services.remove_kept_maildir(kept_id=kept.pk, path=PATH) is True

    assert helper.calls == [("remove-maildir", PATH)]
    kept.refresh_from_db()
    assert kept.removed_at is not None and not kept.is_open
    row = AuditEntry.objects.get(action="mailbox.maildir_removed")
    assert (row.actor.startswith("agent host."), row.domain_ref) == (True, None)
    # The address is free for a new person.
    services.create_mailbox(actor=ROOT, email="carol@b.example", password=NEW_PASSWORD)


def test_a_failed_removal_is_recorded_and_the_row_stays_open(kept, sent, helper):
    services.purge_kept_maildir(actor=ROOT, kept=kept)
    helper.refuse = f"refused: {PATH} does not exist"

    assert services.remove_kept_maildir(kept_id=kept.pk, path=PATH) is False

    kept.refresh_from_db()
    assert (kept.is_open, kept.removal_error) == (True, f"refused: {PATH} does not exist")
    failed = AuditEntry.objects.get(action="mailbox.maildir_remove_failed")
    assert failed.after == {"path": PATH, "error": kept.removal_error}
    # The next sweep tries again, and a success clears the row.
    sent.clear()
    assert services.purge_expired_kept_maildirs() == 1
    assert sent[0][1] == (kept.pk, PATH)
    helper.refuse = ""
    assert services.remove_kept_maildir(kept_id=kept.pk, path=PATH) is True


@pytest.mark.parametrize("case", ["not asked", "other path", "unknown row", "reused",
                                  "forgotten"])
def test_nothing_is_removed_that_is_not_recorded_open_and_asked_for(kept, sent, helper, case):
    kept_id, path = kept.pk, PATH
    if case != "not asked":
        services.purge_kept_maildir(actor=ROOT, kept=kept)
    if case == "other path":
        path = "/var/vmail/a.example/bob"
    elif case == "unknown row":
        kept_id = kept.pk + 1000
    elif case == "reused":
        services.restore_kept_maildir(actor=ROOT, kept=kept, password=NEW_PASSWORD)
    elif case == "forgotten":
        services.forget_kept_maildir(actor=ROOT, address="carol@b.example")

    assert services.remove_kept_maildir(kept_id=kept_id, path=path) is False

    assert helper.calls == []
    assert not AuditEntry.objects.filter(actor__startswith="agent ").exists()


# ---------------------------------------------------------------- the page


def test_the_superadmin_sees_every_open_kept_maildir(kept, world):
    kept_row("gone@a.example", 3, removed_at=timezone.now())
    response = world.client_for("superadmin").get(reverse("domains:kept-maildir-list"))
    assert response.status_code == 200
    page = text(response)
    assert "carol@b.example" in page and PATH in page and "gone@a.example" not in page
    expires = selectors.kept_maildir_expiry(kept)
    assert expires.strftime("%Y-%m-%d") in page
    assert reverse("domains:kept-maildir-restore", args=[kept.pk]) in page
    assert reverse("domains:kept-maildir-purge", args=[kept.pk]) in page
    # The Content-Security-Policy allows no inline script or style.
    assert "<script>" not in page and "style=" not in page and "<style" not in page


def test_the_domain_list_links_the_page_for_superadmins_only(kept, world):
    url = reverse("domains:kept-maildir-list")
    assert url in text(world.client_for("superadmin").get(reverse("domains:domain-list")))
    assert url not in text(world.client_for("admin_b").get(reverse("domains:domain-list")))


@pytest.mark.parametrize("persona", ["admin_b", "admin_a", "mailbox"])
def test_no_one_else_learns_of_kept_maildirs(kept, world, persona, sent):
    """Even the admin of the domain the mailbox was in: the row may outlive the tenant."""
    client = world.client_for(persona)
    for name in ("kept-maildir-list", "kept-maildir-restore", "kept-maildir-purge"):
        args = [] if name == "kept-maildir-list" else [kept.pk]
        assert client.get(reverse(f"domains:{name}", args=args)).status_code == 404
        assert client.post(reverse(f"domains:{name}", args=args),
                           {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
                           ).status_code == 404
    assert KeptMaildir.objects.get().is_open and sent == []
    assert not Mailbox.objects.filter(email="carol@b.example").exists()


def test_the_superadmin_restores_with_a_typed_password(kept, world):
    client = world.client_for("superadmin")
    url = reverse("domains:kept-maildir-restore", args=[kept.pk])
    assert PATH in text(client.get(url))
    response = client.post(url, {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("domains:mailbox-edit", args=["carol@b.example"])
    assert AuditEntry.objects.filter(action="mailbox.create").latest(
        "id").after["maildir_reused"] == PATH
    assert client.get(url).status_code == 404


def test_the_superadmin_restores_with_a_generated_password(kept, world):
    response = world.client_for("superadmin").post(
        reverse("domains:kept-maildir-restore", args=[kept.pk]), {})
    assert response.status_code == 200
    assert response.context["password"] and "shown only this once" in text(response)
    assert response["Cache-Control"].startswith("max-age=0")
    assert Mailbox.objects.filter(email="carol@b.example").exists()


def test_a_refused_restore_says_why(kept, world):
    services.set_domain_active(actor=ROOT, domain=world.b, active=False)
    response = world.client_for("superadmin").post(
        reverse("domains:kept-maildir-restore", args=[kept.pk]),
        {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD})
    assert response.status_code == 400
    assert "b.example is disabled" in text(response)
    assert not Mailbox.objects.filter(email="carol@b.example").exists()


def test_the_superadmin_purges_after_a_confirmation(kept, world, sent):
    client = world.client_for("superadmin")
    url = reverse("domains:kept-maildir-purge", args=[kept.pk])
    confirm = client.get(url)
    assert confirm.status_code == 200 and PATH in text(confirm) and sent == []
    response = client.post(url)
    assert response.status_code == 302
    assert response["Location"] == reverse("domains:kept-maildir-list")
    assert [args for _name, args, _options in sent] == [(kept.pk, PATH)]
    listed = text(client.get(reverse("domains:kept-maildir-list")))
    assert "being removed" in listed


# ---------------------------------------------------------------- the command line


def test_the_command_line_lists_purges_and_restores(kept, world, cli, sent):
    listed = cli("mailbox", "kept")
    assert listed.startswith("carol@b.example\t") and listed.rstrip().endswith("\tkept")
    assert selectors.kept_maildir_expiry(kept).isoformat(timespec="seconds") in listed
    assert cli("mailbox", "purge-maildir", "Carol@B.example") == f"the mail host removes {PATH}\n"
    assert [args for _name, args, _options in sent] == [(kept.pk, PATH)]
    assert cli("mailbox", "kept").rstrip().endswith("\tbeing removed")
    assert cli("mailbox", "restore-maildir", "carol@b.example", "--password-stdin",
               stdin=NEW_PASSWORD + "\n") == (
        f"restored carol@b.example with the mail kept in {PATH}\n")
    assert cli("mailbox", "kept") == ""
    with pytest.raises(CommandError, match=re.escape("no kept Maildir is recorded for carol@")):
        cli("mailbox", "purge-maildir", "carol@b.example")


def test_the_command_line_says_why_a_restore_is_refused(kept, world, cli):
    services.set_domain_active(actor=ROOT, domain=world.b, active=False)
    with pytest.raises(CommandError, match=re.escape("b.example is disabled")):
        cli("mailbox", "restore-maildir", "carol@b.example", "--password-stdin",
            stdin=NEW_PASSWORD + "\n")
