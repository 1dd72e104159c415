"""The records to publish in a real browser: the Copy button puts the zone block on the
clipboard (a script from /static/, nothing inline), and no check has to run first."""

from __future__ import annotations

import pytest

from accounts import services as account_services
from domains import services as domain_services
from tests.conftest import change_host
from tests.integration.test_browser import browser, new_page, shot, sign_in  # noqa: F401

pytestmark = pytest.mark.daemons  # Chromium

ROOT_PW = "root passphrase 123"


def test_copy_puts_the_zone_on_the_clipboard(transactional_db, live_server, browser):  # noqa: F811
    account_services.create_admin(actor="t", username="root@panel.test", password=ROOT_PW,
                                  superadmin=True)
    domain_services.create_domain(actor="t", name="example.org")
    change_host(mail_hostname="mx.example.org", mx_hosts=["mx.example.org"],
                public_ipv4=["192.0.2.10"], public_ipv6=[])
    page = new_page(browser, live_server)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, "root@panel.test", ROOT_PW)
    page.goto("/domains/example.org/")
    section = page.locator("#zone")
    section.get_by_role("heading", name="Records to publish").wait_for()
    block = section.locator("#zone-text").text_content()
    assert block and "example.org. 3600 IN MX 10 mx.example.org." in block
    section.get_by_role("button", name="Copy").click()
    section.get_by_text("Copied to the clipboard.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == block
    shot(page, "zone-records")
