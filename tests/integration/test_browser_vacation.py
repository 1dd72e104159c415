"""The auto-reply and forwarding page in a real browser: a mailbox user switches the
reply on with its subject, text and days, sees it on, switches it off, and sets a
forward that keeps a copy; the page fits a phone's width. No CSP violation."""

from __future__ import annotations

import datetime

import pytest

from domains import services as domain_services
from tests.integration.test_browser import browser, new_page, shot, sign_in  # noqa: F401
from vacation.models import MailRules, SieveScript

pytestmark = pytest.mark.daemons  # Chromium

BOB_PW = "correct horse battery"
# Whether the page scrolls sideways (wider than its window).
SIDEWAYS = "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"


def test_a_mailbox_user_sets_their_auto_reply_and_forwarding(
        transactional_db, live_server, browser):  # noqa: F811
    domain_services.create_domain(actor="t", name="example.org")
    bob = domain_services.create_mailbox(actor="t", email="bob@example.org", password=BOB_PW)
    first = datetime.date.today()
    last = first + datetime.timedelta(days=13)
    page = new_page(browser, live_server)
    sign_in(page, "bob@example.org", BOB_PW)
    page.goto("/me/")
    page.get_by_role("link", name="Auto-reply and forwarding").click()
    page.get_by_role("heading", name="Auto-reply and forwarding").wait_for()
    assert "off" in page.locator("#reply-state").inner_text()

    page.get_by_label("Send an automatic reply").check()
    page.get_by_label("Subject").fill("Away until the 15th")
    page.get_by_label("Text").fill("I am on holiday.\nAsk help@example.org meanwhile.")
    page.get_by_label("First day").fill(first.isoformat())
    page.get_by_label("Last day").fill(last.isoformat())
    page.get_by_label("Answer each sender once every … days").fill("3")
    page.get_by_role("button", name="Save the reply").click()
    page.get_by_text("The automatic reply is saved.").wait_for()
    state = page.locator("#reply-state").inner_text()
    assert "on" in state and "Away until the 15th" in state
    assert f"until {last.day} {last:%B} {last.year}" in state
    assert page.get_by_label("Send an automatic reply").is_checked()
    assert page.get_by_label("Last day").input_value() == last.isoformat()
    rules = MailRules.objects.get(mailbox=bob)
    assert (rules.reply_enabled, rules.reply_from, rules.reply_until, rules.reply_days) == (
        True, first, last, 3)
    assert rules.reply_text == "I am on holiday.\nAsk help@example.org meanwhile."
    assert ":days 3" in SieveScript.objects.get(mailbox=bob).script
    shot(page, "auto-reply-on")

    page.get_by_label("Send an automatic reply").uncheck()
    page.get_by_role("button", name="Save the reply").click()
    page.get_by_text("The automatic reply is saved.").wait_for()
    assert "off" in page.locator("#reply-state").inner_text()
    assert not page.get_by_label("Send an automatic reply").is_checked()
    assert not SieveScript.objects.filter(mailbox=bob).exists()

    assert page.get_by_label("Keep a copy in this mailbox").is_checked()  # the default
    page.get_by_label("Forward to").fill("Bob.Home@Elsewhere.example")
    page.get_by_role("button", name="Save forwarding").click()
    page.get_by_text("Forwarding is saved.").wait_for()
    state = page.locator("#forward-state").inner_text()
    assert "bob.home@elsewhere.example" in state and "a copy stays in this mailbox" in state
    assert page.get_by_label("Forward to").input_value() == "bob.home@elsewhere.example"
    assert page.get_by_label("Keep a copy in this mailbox").is_checked()
    assert 'redirect :copy "bob.home@elsewhere.example";' in SieveScript.objects.get(
        mailbox=bob).script
    shot(page, "forwarding-kept")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert not page.evaluate(SIDEWAYS)
    assert page.get_by_role("button", name="Save forwarding").bounding_box()["x"] >= 0
    shot(page, "auto-reply-390")
