"""Quota usage as the panel shows it: from quota_usage (what Dovecot wrote), against
each mailbox's limit; the near-full list, the SQLite copy and the daily report."""

from __future__ import annotations

import html
import io
import sqlite3
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from core.actor import BEAT
from dnscheck import report
from domains import quota, quota_file, services
from domains.models import Mailbox, QuotaUsage

KIB = 1024
MIB = 1024 * KIB


def text_of(response) -> str:
    return html.unescape(response.content.decode()).replace("\xa0", " ")


def used(email: str, amount: int, messages: int = 1) -> None:
    """What Dovecot's quota_clone writes for `email`."""
    QuotaUsage.objects.update_or_create(username=email,
                                        defaults={"bytes": amount, "messages": messages})


@pytest.fixture
def filled(world):
    """bob 95 % full, dave over his limit, erin at 50 %, frank unlimited and big."""
    mailboxes = {"bob": world.bob}
    Mailbox.objects.filter(pk=world.bob.pk).update(quota=MIB)
    used("bob@a.example", 95 * MIB // 100)
    for name, limit, amount in (("dave", MIB, 2 * MIB), ("erin", 10 * MIB, 5 * MIB),
                                ("frank", 0, 50 * MIB)):
        mailboxes[name] = services.create_mailbox(
            actor="t", email=f"{name}@b.example", password="x" * 16, quota=limit or 0)
        used(f"{name}@b.example", amount)
    return world


def test_used_of_reads_dovecots_row_and_counts_a_missing_one_as_empty(filled):
    bob = Mailbox.objects.get(email="bob@a.example")
    assert quota.used_of(bob) == quota.Used(bytes=95 * MIB // 100, limit=MIB)
    assert quota.used_of(bob).percent == 94 and quota.used_of(bob).near
    carol = Mailbox.objects.get(email="carol@b.example")
    assert quota.used_of(carol) == quota.Used(bytes=0, limit=carol.quota)
    frank = Mailbox.objects.get(email="frank@b.example")
    assert quota.used_of(frank).percent is None and not quota.used_of(frank).near


def test_near_limit_lists_the_fullest_first_and_leaves_out_the_rest(filled):
    rows = list(quota.near_limit(Mailbox.objects.all()).values_list("email", flat=True))
    assert rows == ["dave@b.example", "bob@a.example"]


def test_the_mailbox_list_shows_used_of_limit_in_one_query(filled, django_assert_max_num_queries):
    client = filled.client_for("superadmin")
    with django_assert_max_num_queries(12):
        page = text_of(client.get(reverse("domains:mailbox-list")))
    assert "972.8 KB / 1.0 MB" in page  # bob
    assert "2.0 MB / 1.0 MB" in page and "200%" in page  # dave, over his limit
    assert "50.0 MB / unlimited" in page  # frank
    assert f'value="{95 * MIB // 100}"' in page  # the meter


def test_the_near_full_filter_and_the_largest_first_sort(filled):
    client = filled.client_for("superadmin")
    near = text_of(client.get(reverse("domains:mailbox-list"), {"usage": "near"}))
    assert near.index("dave@b.example") < near.index("bob@a.example")
    assert "erin@" not in near and "frank@" not in near and "carol@" not in near
    largest = text_of(client.get(reverse("domains:mailbox-list"), {"sort": "used"}))
    order = [largest.index(f"{n}@") for n in ("frank", "erin", "dave", "bob")]
    assert order == sorted(order)
    assert "carol@" not in largest  # nothing stored


def test_a_domain_admin_sees_only_their_near_full_mailboxes(filled):
    near = text_of(filled.client_for("admin_a").get(reverse("domains:mailbox-list"),
                                                    {"usage": "near"}))
    assert "bob@a.example" in near and "dave@" not in near


@pytest.mark.parametrize("params", [{"usage": "x" * 300}, {"sort": "'; DROP"},
                                    {"usage": "near", "page": "-5"}, {"usage": ["a", "b"]}])
def test_hostile_filter_values_give_a_page_not_an_error(filled, params):
    response = filled.client_for("admin_a").get(reverse("domains:mailbox-list"), params)
    assert response.status_code in (200, 404)


def test_the_domain_page_says_allocated_and_used(filled):
    page = filled.client_for("superadmin").get(
        reverse("domains:domain-detail", args=["b.example"]))
    rows = {row[0]: row[3:] for row in page.context["limits"]}
    assert rows["Quota allocated"] == ("11M", "unlimited")
    assert rows["Quota used"][0].replace("\xa0", " ") == "57.0 MB"
    assert "2.0 MB / 1.0 MB" in text_of(page)


def test_the_mailbox_page_and_the_users_own_page_show_usage(filled):
    edit = text_of(filled.client_for("admin_a").get(
        reverse("domains:mailbox-edit", args=["bob@a.example"])))
    assert "Quota used: " in edit and "972.8 KB / 1.0 MB" in edit
    own = text_of(filled.client_for("mailbox").get(reverse("accounts:me")))
    assert "972.8 KB / 1.0 MB" in own and "94%" in own


def test_the_daily_report_lists_mailboxes_over_90_percent(filled, mailoutbox):
    assert report.send_reports() == 3
    sent = {m.to[0]: m for m in mailoutbox}
    root = sent["root@admin.test"]
    assert "2 mailboxes near full" in root.subject
    assert "MAILBOXES AT 90 % OF THEIR QUOTA OR MORE" in root.body
    assert root.body.index("dave@b.example  200 %") < root.body.index("bob@a.example  94 %")
    assert "erin@" not in root.body
    assert "dave@b.example" in root.alternatives[0][0]
    # Each admin only their own domains' mailboxes.
    assert "bob@a.example" in sent["alice@a.example"].body
    assert "dave@" not in sent["alice@a.example"].body
    assert "bob@" not in sent["bert@b.example"].body


# ---------------------------------------------------------------- SQLite: Dovecot's own file


def dovecot_writes(path: Path, rows: list[tuple[str, int, int]]) -> None:
    """As Dovecot's dict-sql does on SQLite: an upsert on the username."""
    with sqlite3.connect(path) as db:
        db.execute(quota_file.SCHEMA)
        db.executemany("INSERT INTO quota_usage (username, bytes, messages) VALUES (?, ?, ?) "
                       "ON CONFLICT (username) DO UPDATE SET bytes = excluded.bytes, "
                       "messages = excluded.messages", rows)
    db.close()


def test_sync_copies_dovecots_file_and_writes_only_what_changed(world, tmp_path):
    path = tmp_path / "quota.sqlite3"
    dovecot_writes(path, [("bob@a.example", 300_000, 3), ("carol@b.example", 10, 1)])
    assert services.sync_quota_usage(actor=BEAT, path=path) == 2
    assert services.sync_quota_usage(actor=BEAT, path=path) == 0
    dovecot_writes(path, [("bob@a.example", 400_000, 4)])
    assert services.sync_quota_usage(actor=BEAT, path=path) == 1
    assert QuotaUsage.objects.get(username="bob@a.example").bytes == 400_000


def test_sync_reads_in_chunks(world, tmp_path, monkeypatch):
    monkeypatch.setattr(quota_file, "CHUNK", 2)
    path = tmp_path / "quota.sqlite3"
    dovecot_writes(path, [(f"u{n}@a.example", n, 1) for n in range(5)])
    assert services.sync_quota_usage(actor=BEAT, path=path) == 5
    assert QuotaUsage.objects.count() == 5


def test_sync_skips_rows_no_mailbox_could_have(world, tmp_path):
    """The file is Dovecot's user's to write, not the panel's: a row that no mailbox
    could have (text for a number, out of range, a name longer than an address)
    is left out, and the others are still copied."""
    path = tmp_path / "quota.sqlite3"
    dovecot_writes(path, [("bob@a.example", 300_000, 3), ("x" * 300 + "@a.example", 1, 1),
                          ("carol@b.example", 10, 1), ("dave@a.example", -5, 1)])
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO quota_usage VALUES ('erin@a.example', 1e30, 1)")
        db.execute("INSERT INTO quota_usage VALUES ('frank@a.example', 'lots', 'x')")
    db.close()
    assert services.sync_quota_usage(actor=BEAT, path=path) == 2
    assert set(QuotaUsage.objects.values_list("username", flat=True)) == {
        "bob@a.example", "carol@b.example"}


@pytest.mark.both_backends
def test_the_command_explains_a_missing_file(db, tmp_path):
    with pytest.raises(CommandError, match="quota_usage init"):
        call_command("quota_usage", "sync", "--path", str(tmp_path / "none.sqlite3"),
                     stdout=io.StringIO())


def test_init_makes_a_file_dovecot_owns_and_the_panel_reads(db, tmp_path):
    path = quota_file.create(tmp_path / "dir" / "quota.sqlite3", owner="mail")
    assert path.stat().st_uid == 8 and path.parent.stat().st_uid == 8
    assert path.stat().st_mode & 0o777 == 0o644
    assert list(quota_file.read(path)) == []
    call_command("quota_usage", "sync", "--path", str(path), stdout=io.StringIO())
