"""Security keys in a real browser (issue 13 §4): Chromium's virtual authenticator (the
DevTools WebAuthn domain) stands in for a USB key. Add a key from the two-factor page
after the password, sign out, sign in with password + key; the password alone reaches
no page; a removed key no longer signs in. The page's scripts are django-otp-webauthn's,
served by the panel, under its Content-Security-Policy (the browser fixture fails on
any violation). WebAuthn needs a secure context with a host name: http://localhost is
one, 127.0.0.1 is no valid RP ID, so the pages are opened on localhost."""

from __future__ import annotations

import pytest

from accounts import services as account_services
from tests.integration.test_browser import browser, shot, sign_in  # noqa: F401
from tests.integration.test_browser import new_page as _new_page
from tests.integration.test_browser_two_factor import sign_out

pytestmark = pytest.mark.daemons  # Chromium

ROOT_PW = "root passphrase 123"
AUTHENTICATOR = {"protocol": "ctap2", "transport": "usb", "hasResidentKey": True,
                 "hasUserVerification": True, "isUserVerified": True}


class _OnLocalhost:
    def __init__(self, live_server) -> None:
        self.url = live_server.url.replace("://127.0.0.1:", "://localhost:")


def plug_in(cdp) -> str:
    """A new virtual USB key; returns its id."""
    return cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})[
        "authenticatorId"]


def add_key(page, name: str) -> None:
    page.goto("/two-factor/")
    page.get_by_role("link", name="Add a security key").click()
    page.get_by_label("A name for the key (to tell it from others)").fill(name)
    page.get_by_label("Your password").fill(ROOT_PW)
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Add the key").click()


def test_add_a_key_sign_in_with_it_and_a_removed_key_no_longer_works(
        transactional_db, live_server, browser):  # noqa: F811
    server = _OnLocalhost(live_server)
    assert server.url.startswith("http://localhost:"), server.url
    account_services.create_admin(actor="t", username="root@panel.test", password=ROOT_PW,
                                  superadmin=True)
    page = _new_page(browser, server)
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    first = plug_in(cdp)
    sign_in(page, "root@panel.test", ROOT_PW)

    add_key(page, "blue key")
    page.get_by_role("heading", name="Your recovery codes").wait_for()
    codes = page.locator("#recovery-codes code").all_text_contents()
    assert len(codes) == 10  # the first second step brings the recovery codes
    page.get_by_role("link", name="I have kept them").click()
    assert "blue key" in (page.locator("#security-keys").text_content() or "")
    assert "a security key" in (page.locator("#two-factor-state").text_content() or "")
    shot(page, "security-key-added")
    blue = cdp.send("WebAuthn.getCredentials", {"authenticatorId": first})["credentials"]
    assert len(blue) == 1
    sign_out(page)

    # The password alone: the second step, and no page behind it.
    sign_in(page, "root@panel.test", ROOT_PW)
    page.get_by_role("heading", name="Second step").wait_for()
    for path in ("/", "/domains/", "/account/", "/two-factor/", "/admins/", "/audit/"):
        page.goto(path)
        assert page.url.startswith(f"{server.url}/login/"), (path, page.url)
    sign_in(page, "root@panel.test", ROOT_PW)
    page.get_by_role("button", name="Use a security key").click()
    page.get_by_role("link", name="My account").wait_for()
    assert page.url == f"{server.url}/"

    # A second key on another authenticator; then the first key is removed.
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": first})
    second = plug_in(cdp)
    add_key(page, "spare key")
    page.get_by_role("heading", name="Two-factor sign-in").wait_for()  # no new codes
    page.get_by_text("Security key spare key added.").wait_for()
    blue_item = page.locator("#security-keys li", has_text="blue key")
    blue_item.get_by_label("Your password").fill(ROOT_PW)
    blue_item.get_by_role("button", name="Remove blue key").click()
    page.get_by_text("Security key blue key removed.").wait_for()
    assert "blue key" not in (page.locator("#security-keys").text_content() or "")
    sign_out(page)

    # Only the removed key at hand: the browser has nothing the panel asks for.
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": second})
    old = plug_in(cdp)
    cdp.send("WebAuthn.addCredential", {"authenticatorId": old, "credential": blue[0]})
    sign_in(page, "root@panel.test", ROOT_PW)
    page.get_by_role("button", name="Use a security key").click()
    page.locator("#passkey-verification-status-message").filter(
        has_text="Verification").wait_for()
    status = page.locator("#passkey-verification-status-message").text_content() or ""
    assert "not allowed" in status, status
    shot(page, "security-key-removed-refused")
    page.goto("/")
    assert page.url.startswith(f"{server.url}/login/"), page.url
