"""Auto-reply and forwarding: the services, the script they make, the pages."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from core.actor import Actor
from core.models import AuditEntry
from domains import services as domains
from vacation import services, sieve
from vacation.models import MailRules, SieveScript

ADMIN = Actor.account("alice@a.example")
TODAY = datetime.date(2026, 12, 3)


def reply(world, **changes):
    values = {"enabled": True, "subject": "Away", "text": "Back soon.", "start": None,
              "end": None, "days": 7, **changes}
    return services.set_auto_reply(actor=ADMIN, mailbox=world.bob, **values)


def script_of(mailbox) -> str:
    return SieveScript.objects.get(mailbox=mailbox).script


def test_a_reply_is_a_vacation_script_with_the_dates_and_the_aliases(world):
    domains.create_alias_domain(actor="t", name="alias-a.example", target="a.example")
    reply(world, start=TODAY, end=TODAY + datetime.timedelta(days=4), days=3)
    text = script_of(world.bob)
    assert 'require ["vacation", "date", "relational"];' in text
    assert 'currentdate :value "ge" "date" "2026-12-03"' in text
    assert 'currentdate :value "le" "date" "2026-12-07"' in text
    assert ':days 3 :addresses ["bob@alias-a.example", "info@a.example"]' in text
    assert 'exists ["list-id"' in text and '"precedence" ["bulk", "list", "junk"]' in text
    row = AuditEntry.objects.get(action="mailbox.auto_reply")
    assert row.actor == "alice@a.example" and row.after["reply_subject"] == "Away"


def test_every_save_is_a_new_script_row_and_off_removes_it(world):
    reply(world)
    first = SieveScript.objects.get(mailbox=world.bob).pk
    reply(world, text="Changed.")
    # A new id: Pigeonhole keeps a compiled script under the old one.
    assert SieveScript.objects.get(mailbox=world.bob).pk != first
    services.set_auto_reply(actor=ADMIN, mailbox=world.bob, enabled=False, subject="",
                            text="")
    assert not SieveScript.objects.filter(mailbox=world.bob).exists()
    assert AuditEntry.objects.filter(action="mailbox.auto_reply").count() == 3


def test_forwarding_with_and_without_a_copy(world):
    services.set_forwarding(actor=ADMIN, mailbox=world.bob,
                            forward_to="X@Elsewhere.example; y@elsewhere.example", keep=True)
    assert script_of(world.bob).splitlines()[-2:] == [
        'redirect :copy "x@elsewhere.example";', 'redirect :copy "y@elsewhere.example";']
    services.set_forwarding(actor=ADMIN, mailbox=world.bob, forward_to="x@elsewhere.example",
                            keep=False)
    assert 'redirect "x@elsewhere.example";' in script_of(world.bob)
    assert '"copy"' not in script_of(world.bob)
    services.set_forwarding(actor=ADMIN, mailbox=world.bob, forward_to="", keep=False)
    assert not SieveScript.objects.filter(mailbox=world.bob).exists()
    assert MailRules.objects.get(mailbox=world.bob).forward_keep  # nothing to forward: kept


def test_deleting_the_mailbox_deletes_its_rules_and_script(world):
    reply(world)
    domains.delete_mailbox(actor=ADMIN, mailbox=world.bob)
    assert not SieveScript.objects.exists() and not MailRules.objects.exists()


@pytest.mark.parametrize(("changes", "field"), [
    ({"subject": "Away\nBcc: victim@example.net"}, "subject"),
    ({"subject": "Away\rX: y"}, "subject"),
    ({"subject": "x" * 201}, "subject"),
    ({"subject": " "}, "subject"),
    ({"text": "x" * 4001}, "text"),
    ({"text": "nul\x00here"}, "text"),
    ({"days": 0}, "days"),
    ({"days": 31}, "days"),
    ({"start": TODAY, "end": TODAY - datetime.timedelta(days=1)}, "until"),
])
def test_bad_replies_are_refused(world, changes, field):
    with pytest.raises(ValidationError) as refused:
        reply(world, **changes)
    assert field in refused.value.message_dict
    assert not SieveScript.objects.exists() and not AuditEntry.objects.filter(
        action="mailbox.auto_reply").exists()


@pytest.mark.parametrize("targets", [
    "not an address", "bob@a.example", "a@x.example,b@x.example,c@x.example,d@x.example,"
    "e@x.example", 'evil"@x.example', "x@exa mple.com",
])
def test_bad_forward_targets_are_refused(world, targets):
    with pytest.raises(ValidationError) as refused:
        services.set_forwarding(actor=ADMIN, mailbox=world.bob, forward_to=targets, keep=True)
    assert "forward_to" in refused.value.message_dict


def test_what_is_typed_stays_inside_sieve_strings():
    text = sieve.script(reply=sieve.Reply(
        subject='Out "of" office', text='Line one;\n} discard; "quoted" \\ end',
        days=1, start=None, end=None, addresses=[]), forward_to=[], keep=True)
    assert ':subject "Out \\"of\\" office"' in text
    assert '"Line one;\n} discard; \\"quoted\\" \\\\ end";' in text


def test_the_mailbox_user_sets_their_own_reply(world):
    client = world.client_for("mailbox")
    url = reverse("vacation:own")
    assert client.get(url).status_code == 200
    response = client.post(url, {"reply-part": "reply", "reply-enabled": "on",
                                 "reply-subject": "Away", "reply-text": "Back on Monday.",
                                 "reply-start": "2026-12-01", "reply-end": "2026-12-24",
                                 "reply-days": "5"})
    assert response.status_code == 302
    rules = MailRules.objects.get(mailbox=world.bob)
    assert rules.reply_until == datetime.date(2026, 12, 24) and rules.reply_days == 5
    assert AuditEntry.objects.get(action="mailbox.auto_reply").actor == "bob@a.example"


def test_the_admin_sets_forwarding_on_the_mailbox_page(world):
    client = world.client_for("admin_a")
    url = reverse("vacation:mailbox", args=["bob@a.example"])
    response = client.post(url, {"forward-part": "forward",
                                 "forward-forward_to": "x@elsewhere.example"})
    assert response.status_code == 302
    rules = MailRules.objects.get(mailbox=world.bob)
    assert rules.forward_list == ["x@elsewhere.example"] and not rules.forward_keep
    # Another domain's admin cannot post to it either.
    other = world.client_for("admin_b").post(url, {"forward-part": "forward",
                                                   "forward-forward_to": "y@x.example"})
    assert other.status_code == 404


@pytest.mark.parametrize("data", [
    {"reply-part": "reply", "reply-enabled": "on", "reply-subject": "A\r\nBcc: v@x.example",
     "reply-text": "t", "reply-days": "7"},
    {"reply-part": "reply", "reply-enabled": "on", "reply-subject": "A", "reply-text": "t",
     "reply-days": "7", "reply-start": "2026-02-30"},
    {"reply-part": "reply", "reply-enabled": "on", "reply-subject": "A", "reply-text": "t",
     "reply-days": "7", "reply-start": "99999-01-01"},
    {"reply-part": "reply", "reply-enabled": "on", "reply-subject": "A", "reply-text": "t",
     "reply-days": "7", "reply-start": "2026-12-10", "reply-end": "2026-12-01"},
    {"reply-part": "reply", "reply-enabled": "on", "reply-subject": "A",
     "reply-text": "x" * 100_000, "reply-days": "7"},
    {"reply-part": "reply", "reply-subject": "A", "reply-text": "t", "reply-days": "-1"},
    {"reply-part": "reply", "reply-subject": "A", "reply-text": "t", "reply-days": "1e9"},
    {"forward-part": "forward", "forward-forward_to": "x" * 10_000},
    {"forward-part": "forward", "forward-forward_to": "a@x.example\nb@x.example\r\nc@"},
    {"part": "reply"},
    {},
])
def test_hostile_input_gives_a_form_error_never_a_500(world, data):
    client = world.client_for("mailbox")
    response = client.post(reverse("vacation:own"), data)
    assert response.status_code == 400
    assert not SieveScript.objects.exists()


def test_the_audit_log_shows_the_change_in_words(world):
    from core.audit_text import describe
    reply(world, subject="Gone fishing")
    row = AuditEntry.objects.get(action="mailbox.auto_reply")
    text = describe(row.action, row.before, row.after, domain="a.example", actor=row.actor)
    assert "Gone fishing" in str(text)
