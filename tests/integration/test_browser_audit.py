"""The audit log in a real browser (issue 12, item 6): the filters on one line at
desktop width and wrapping at 390 px, an import unfolding to its rows with no
script, the action field offering the actions; no CSP violation."""

from __future__ import annotations

import pytest

from accounts import services as account_services
from domains import passwords
from domains import services as domain_services
from domains.services import MailboxImport
from tests.integration.test_browser import browser, new_page, shot, sign_in  # noqa: F401

pytestmark = pytest.mark.daemons  # Chromium

ROOT_PW = "root passphrase 123"


def test_the_audit_log_reads_like_a_history(transactional_db, live_server, browser):  # noqa: F811
    account_services.create_admin(actor="t", username="root@panel.test", password=ROOT_PW,
                                  superadmin=True)
    domain = domain_services.create_domain(actor="t", name="example.org")
    hashed = passwords.hash_password("an imported passphrase 1")
    domain_services.import_mailboxes(actor="root@panel.test", domain=domain, rows=[
        MailboxImport(email=f"user{i:02}@example.org", password_hash=hashed) for i in range(30)])
    bob = domain_services.create_mailbox(actor="t", email="bob@example.org",
                                         password="correct horse battery", quota="2G")
    domain_services.update_mailbox(actor="t", mailbox=bob, quota="3G")
    page = new_page(browser, live_server)
    sign_in(page, "root@panel.test", ROOT_PW)
    page.goto("/audit/")
    page.get_by_text("quota 2G -> 3G").wait_for()

    # Desktop: the five filters and the button share one line.
    form = page.locator("form.audit-filters")
    inputs = form.locator("input:not([type=hidden]), button").evaluate_all(
        "els => els.map(e => Math.round(e.getBoundingClientRect().bottom))")
    assert len(inputs) == 6 and max(inputs) - min(inputs) <= 4, inputs
    options = page.locator("#audit-actions option").evaluate_all("els => els.map(e => e.value)")
    assert "mailbox.*" in options and "mailbox.update" in options

    fold = page.locator("details.audit-batch")
    assert fold.locator("summary").text_content().startswith(
        "import of 30 mailboxes into example.org by root@panel.test: 30 created")
    assert not fold.locator("li").first.is_visible()
    fold.locator("summary").click()
    assert fold.locator("li").count() == 20 and fold.locator("li").first.is_visible()
    shot(page, "audit-log")
    fold.get_by_role("link", name="All its rows").click()
    page.get_by_text("Rows of the event").wait_for()
    assert page.locator("tbody tr").count() == 30

    # Phone width: the filters wrap, nothing is wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/audit/?action=mailbox.*")
    page.get_by_text("quota 2G -> 3G").wait_for()
    assert page.locator("td.audit-change").first.is_visible()
    widths = form.evaluate("f => [f.scrollWidth, f.clientWidth]")
    assert widths[0] <= widths[1], widths
    # The log's own table fits (the navigation above it is base.html's).
    assert page.locator("table.audit-log").evaluate("t => t.getBoundingClientRect().right") <= 390
    shot(page, "audit-log-390")
