"""Forms in a real browser: focus lands on the first problem, the live address check
answers right under the address, the password hint under the new password, and a
generated password reaches the welcome sheet once, with a working Copy button."""

from __future__ import annotations

import pytest

from accounts import services as account_services
from domains import services as domain_services
from tests.integration.test_browser import browser, new_page, shot, sign_in  # noqa: F401

pytestmark = pytest.mark.daemons  # Chromium

ROOT_PW = "root passphrase 123"
BOB_PW = "correct horse battery"


def test_errors_focus_live_checks_and_the_welcome_password(transactional_db, live_server,
                                                           browser):  # noqa: F811
    account_services.create_admin(actor="t", username="root@panel.test", password=ROOT_PW,
                                  superadmin=True)
    domain_services.create_domain(actor="t", name="example.org")
    domain_services.create_mailbox(actor="t", email="bob@example.org", password=BOB_PW)
    page = new_page(browser, live_server)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, "root@panel.test", ROOT_PW)

    page.goto("/domains/example.org/mailboxes/new/")
    address = page.locator("#id_local_part")
    address.fill("bob")
    check = page.locator("#address-check")
    check.get_by_text("already a mailbox").wait_for()
    # Right under the address field, and read with it.
    assert address.evaluate("e => e.nextElementSibling.id") == "address-check"
    assert "address-check" in (address.get_attribute("aria-describedby") or "")
    page.locator("#id_quota").fill("lots")
    page.locator("#id_password").fill("one fine password 1")
    page.locator("#id_password_again").fill("another password 2")
    page.get_by_role("button", name="Add mailbox").click()
    page.wait_for_load_state()
    page.get_by_text("3 fields below need a change.").wait_for()
    assert page.evaluate("document.activeElement.name") == "local_part"
    for name in ("local_part", "quota", "password_again"):
        assert page.locator(f"[name={name}]").get_attribute("aria-invalid") == "true"
    shot(page, "form-errors")

    address.fill("dave")
    page.locator("#id_quota").fill("")
    page.locator("#id_password").fill("")
    page.locator("#id_password_again").fill("")
    page.get_by_role("button", name="Add mailbox").click()
    secret = page.locator("#generated-password").text_content()
    assert secret
    page.get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    href = page.get_by_role("link", name="Welcome sheet to print, with this password"
                            ).get_attribute("href")
    assert href and secret not in href
    page.goto(href)
    assert page.locator("#welcome-password").text_content() == secret
    page.get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    # The sheet's own live status says so (the sheet is an <article>, not a <section>).
    page.get_by_role("status").get_by_text("Copied to the clipboard.").wait_for(timeout=5000)
    shot(page, "welcome-sheet-with-password")
    page.reload()
    page.get_by_text("the one your administrator gave you").wait_for()
    assert secret not in (page.content())

    bob = new_page(browser, live_server)
    sign_in(bob, "bob@example.org", BOB_PW)
    bob.goto("/me/password/")
    new = bob.get_by_label("New password", exact=True)
    new.fill("x")
    bob.locator("#hint").get_by_text("Use at least").first.wait_for()
    assert new.evaluate("e => e.nextElementSibling.id") == "hint"
