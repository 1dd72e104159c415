"""The audit log reads like a history (issue 12, item 6): readable changes, an
import as one event that unfolds to its rows, an action filter with prefixes."""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import services as account_services
from accounts.views_audit import EVENT_ROWS_SHOWN
from core.http import PAGE_SIZE
from core.models import AuditEntry
from domains import passwords, services
from domains.services import MailboxImport
from tests.conftest import ADMIN_PASSWORD

URL = reverse("accounts:audit")
G = 1024**3


@pytest.fixture
def hashed() -> str:
    return passwords.hash_password("an imported passphrase 1")


def _import(domain, count, hashed, *, actor="root@admin.test", inactive=()):
    rows = [MailboxImport(email=f"user{i:03}@{domain.name}", password_hash=hashed)
            for i in range(count)]
    return services.import_mailboxes_with_state(actor=actor, domain=domain, rows=rows,
                                                inactive=inactive)


def _text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def test_changes_read_as_a_history(world):
    services.update_mailbox(actor="t", mailbox=world.bob, quota="3G", name="Bob B")
    services.set_mailbox_active(actor="t", mailbox=world.bob, active=False)
    services.update_mailbox(actor="t", mailbox=world.bob, password="a brand new passphrase 9")
    body = _text(world.client_for("admin_a").get(URL))
    assert "name '' -> 'Bob B'" in body
    assert re.search(r"quota (unlimited|\S+) -> 3G", body)
    assert "disabled" in body and "password changed" in body
    assert "mailbox.create bob@a.example created: quota unlimited, enabled" in body
    assert "{" not in body.split("Audit log", 2)[-1]  # no raw JSON any more


def test_an_import_is_one_event_that_unfolds_to_its_rows(world, hashed):
    c = services.create_domain(actor="t", name="c.example")
    _import(c, EVENT_ROWS_SHOWN + 5, hashed, inactive=["user001@c.example"])
    event = AuditEntry.objects.get(action="domain.import")
    assert event.after == {"kind": "mailboxes", "rows": 25, "created": 25, "disabled": 1}
    assert AuditEntry.objects.filter(parent=event.pk).count() == 26  # 25 created, 1 disabled
    response = world.client_for("superadmin").get(URL)
    body = response.content.decode()
    assert ("import of 25 mailboxes into c.example by root@admin.test: 25 created, 1 disabled"
            in _text(response))
    folded = body.split('<details class="audit-batch">', 1)[1].split("</details>", 1)[0]
    assert folded.count("<li>") == EVENT_ROWS_SHOWN
    assert "user000@c.example" in folded and "user024@c.example" not in folded
    assert f'href="?batch={event.pk}"' in folded
    # Outside the fold, the page lists the event, not its rows.
    outside = body.replace(folded, "")
    assert "user0" not in outside and "<code>mailbox.import</code>" not in outside

    rows = world.client_for("superadmin").get(URL, {"batch": event.pk})
    text = _text(rows)
    assert "Rows of the event" in text and "user024@c.example" in text
    assert text.count("mailbox.import") == 25
    only_off = _text(world.client_for("superadmin").get(
        URL, {"batch": event.pk, "action": "mailbox.disable"}))
    assert "user001@c.example" in only_off and "user002@c.example" not in only_off


def test_the_rows_of_a_big_import_are_paged(world, hashed):
    c = services.create_domain(actor="t", name="c.example")
    _import(c, PAGE_SIZE + 10, hashed)
    event = AuditEntry.objects.get(action="domain.import")
    client = world.client_for("superadmin")
    first = client.get(URL, {"batch": event.pk}).content.decode()
    assert first.count("<code>mailbox.import</code>") == PAGE_SIZE
    assert f"batch={event.pk}&amp;page=2" in first
    second = client.get(URL, {"batch": event.pk, "page": 2}).content.decode()
    assert second.count("<code>mailbox.import</code>") == 10


def test_the_query_count_does_not_grow_with_the_size_of_an_import(world, hashed):
    client = world.client_for("superadmin")
    counts = []
    for size in (3, 60):
        domain = services.create_domain(actor="t", name=f"c{size}.example")
        _import(domain, size, hashed)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL).status_code == 200
        counts.append(len(queries))
        AuditEntry.objects.filter(domain=domain.name).delete()  # the same log for the next
    assert counts[0] == counts[1]


def test_a_domain_deletion_is_one_event_with_its_rows_under_it(world, hashed):
    c = services.create_domain(actor="t", name="c.example")
    _import(c, EVENT_ROWS_SHOWN + 1, hashed)
    services.create_alias(actor="t", source="team@c.example", destinations="user000@c.example",
                          checked_domains=None)
    services.delete_domain(actor="t", domain=c, force=True)
    event = AuditEntry.objects.get(action="domain.delete")
    assert event.after == {"forced": True, "maildirs_kept": EVENT_ROWS_SHOWN + 1}
    rows = AuditEntry.objects.filter(parent=event.pk)
    assert sorted(set(rows.values_list("action", flat=True))) == ["alias.delete",
                                                                 "mailbox.delete"]
    assert rows.count() == EVENT_ROWS_SHOWN + 2
    body = world.client_for("superadmin").get(URL, {"domain": "c.example"}).content.decode()
    assert "deleted; forced yes, Maildirs kept 21" in html.unescape(body)
    outside = re.sub(r"(?s)<details.*?</details>", "", body)
    assert "<code>mailbox.delete</code>" not in outside
    assert f'href="?batch={event.pk}"' in body
    everything = _text(world.client_for("superadmin").get(URL, {"batch": event.pk}))
    assert "team@c.example" in everything and "Maildir kept at" in everything


def test_a_domain_admin_sees_only_the_imports_of_their_domains(world, hashed):
    c = services.create_domain(actor="t", name="c.example")
    _import(c, 3, hashed)
    _import(world.a, 2, hashed, actor="alice@a.example")
    theirs = AuditEntry.objects.get(action="domain.import", domain="a.example")
    other = AuditEntry.objects.get(action="domain.import", domain="c.example")
    admin_a = world.client_for("admin_a")
    body = _text(admin_a.get(URL))
    assert "import of 2 mailboxes into a.example" in body
    assert "c.example" not in body
    # Another domain's event reads exactly like an event that does not exist.
    missing = max(AuditEntry.objects.values_list("pk", flat=True)) + 1000
    assert _text(admin_a.get(URL, {"batch": other.pk})) == _text(admin_a.get(URL, {
        "batch": missing})).replace(str(missing), str(other.pk))
    assert "user000@c.example" not in admin_a.get(URL, {"batch": other.pk}).content.decode()
    assert "user001@a.example" in _text(admin_a.get(URL, {"batch": theirs.pk}))
    # A row of an event is no event of its own.
    child = AuditEntry.objects.filter(parent=theirs.pk).first()
    assert "Rows of the event" not in _text(admin_a.get(URL, {"batch": child.pk}))


def test_the_action_filter_takes_a_prefix(world):
    services.update_mailbox(actor="t", mailbox=world.bob, quota="2G")
    client = world.client_for("superadmin")
    for value in ("mailbox.*", "mailbox.", "MAILBOX.*", "mailbox"):
        body = client.get(URL, {"action": value}).content.decode()
        assert "<code>mailbox.update</code>" in body and "<code>mailbox.create</code>" in body
        assert "<code>domain.create</code>" not in body and "<code>alias.create</code>" not in body
    exact = client.get(URL, {"action": "mailbox.update"}).content.decode()
    assert "<code>mailbox.update</code>" in exact and "<code>mailbox.create</code>" not in exact
    everything = client.get(URL, {"action": "*"}).content.decode()
    assert "<code>domain.create</code>" in everything
    assert "<code>mailbox.create</code>" in everything


def test_the_action_list_offered_keeps_within_reach(world):
    page = world.client_for("admin_a").get(URL).content.decode()
    offered = re.findall(r'<option value="([^"]+)">', page.split('id="audit-actions"')[1])
    assert "mailbox.*" in offered and "mailbox.update" in offered
    assert not [a for a in offered if a.startswith(("admin.", "mailhost.", "tables."))]
    assert not [a for a in offered if "maildir" in a]
    assert 'list="audit-actions"' in page
    superadmin = world.client_for("superadmin").get(URL).content.decode()
    assert '<option value="admin.*">' in superadmin


def test_the_filters_keep_the_tenant_boundary(world):
    account_services.create_admin(actor="t", username="zed@admin.test", password=ADMIN_PASSWORD,
                                  domains=[world.b])
    client = world.client_for("admin_a")
    for params in ({"action": "admin.*"}, {"action": "*"}, {"domain": "b.example"},
                   {"actor": "t", "action": "mailbox.*"}):
        body = client.get(URL, params).content.decode()
        assert "carol@b.example" not in body and "zed@admin.test" not in body, params


@pytest.mark.parametrize("value", [
    "x" * 5000, "mailbox.%", "mailbox._", "%", "_", "'; DROP TABLE audit_log; --", "\x00",
    "mailbox.**", "a.b.c", ".*", "é.*", "\u202e", "<script>", "mailbox.create\n", " ",
])
def test_hostile_filter_input_is_no_500(world, value):
    client = world.client_for("admin_a")
    for params in ({"action": value}, {"actor": value}, {"domain": value},
                   {"batch": value}, {"batch": value, "action": value, "page": value}):
        response = client.get(URL, params)
        assert response.status_code == 200, params
        assert "<script>" not in response.content.decode().split("</header>", 1)[-1]


def test_an_action_that_is_no_action_is_an_error_not_a_list(world):
    client = world.client_for("superadmin")
    for value in ("mailbox.%", "%", "_%", "a.b.c", "x" * 70):
        body = _text(client.get(URL, {"action": value}))
        assert "mailbox.create" not in body.split("Filter", 1)[1], value
        assert "No entries match." in body
        assert ("An action is like mailbox.create" in body
                or "at most 65 characters" in body), value
    # _ is a letter of actions (maildir_kept), not LIKE's any-one-character.
    services.update_mailbox(actor="t", mailbox=world.bob, quota="2G")
    body = _text(client.get(URL, {"action": "mailbox_update"}))
    assert "No entries match." in body


@pytest.mark.parametrize("batch", ["9" * 30, "9223372036854775808", "-1", "1e3", "\uff11"])
def test_batch_numbers_past_the_ends_are_no_500(world, batch):
    response = world.client_for("superadmin").get(URL, {"batch": batch})
    assert response.status_code == 200
    assert "<code>domain.create</code>" in response.content.decode()


def test_the_dashboard_shows_an_import_as_one_readable_event(world, hashed):
    c = services.create_domain(actor="t", name="c.example")
    _import(c, 30, hashed)
    services.update_mailbox(actor="t", mailbox=world.bob, quota="3G")
    body = _text(world.client_for("superadmin").get(reverse("home")))
    recent = body.split("Recent changes", 1)[1]
    assert "import of 30 mailboxes into c.example" in recent
    assert "user000@c.example" not in recent  # its rows stay under the event
    assert re.search(r"quota (unlimited|\S+) -> 3G", recent)


def test_a_domain_admin_is_offered_the_two_factor_actions_they_can_see(world):
    """Of the twofactor family, only rows written with a domain's id reach a domain
    admin: their mailbox users' resets and their domain's requirement. The filter
    offers those and no other (an account's own set-up carries no domain)."""
    from accounts import twofactor
    from core.actor import Actor
    from tests.accounts.test_two_factor import enrol

    root, alice = Actor.account("root@admin.test"), Actor.account("alice@a.example")
    for required in (True, False):
        twofactor.set_required_for_domain(actor=root, domain=world.a, required=required)
        twofactor.set_required_for_all_admins(actor=root, required=required)
    enrol(world.admin_a)
    twofactor.renew_recovery_codes(actor=alice, user=world.admin_a)
    twofactor.reset_two_factor(actor=root, user=world.admin_a)  # an admin's: no domain
    bob = account_services.mailbox_account(world.bob)
    enrol(bob)
    twofactor.reset_two_factor(actor=alice, user=bob)
    enrol(world.admin_b)
    twofactor.disable(actor=Actor.account("bert@b.example"), user=world.admin_b)
    written = set(AuditEntry.objects.filter(action__startswith="twofactor.")
                  .values_list("action", flat=True))
    assert written == {"twofactor.domain", "twofactor.policy", "twofactor.enable",
                       "twofactor.recovery_codes", "twofactor.reset", "twofactor.disable"}

    client = world.client_for("admin_a")
    page = client.get(URL).content.decode()
    offered = re.findall(r'<option value="([^"]+)">', page.split('id="audit-actions"')[1])
    body = client.get(URL, {"action": "twofactor.*"}).content.decode()
    seen = set(re.findall(r"<code>(twofactor\.[a-z_]+)</code>", body))
    assert seen == {"twofactor.domain", "twofactor.reset"}
    assert {a for a in offered if a.startswith("twofactor.")} == {"twofactor.*", *seen}
    # The boundary is as before: the reset of the admin's own account (no domain) and
    # another domain's admin's rows stay out of reach.
    assert body.count("<code>twofactor.reset</code>") == 1 and "bert@b.example" not in body
    everything = world.client_for("superadmin").get(URL, {"action": "twofactor.*"})
    assert set(re.findall(r"<code>(twofactor\.[a-z_]+)</code>",
                          everything.content.decode())) == written
