"""Two-factor sign-in in a real browser (issue 13 §4): enrol from the QR page's key,
sign out, sign in with password + code; the password alone reaches no page; a replayed
code is refused; a recovery code works once. Codes are computed here from the key the
page shows, as an authenticator app would."""

from __future__ import annotations

import base64
import time

import pytest
from django_otp.oath import TOTP

from accounts import services as account_services
from accounts import twofactor
from domains import services as domain_services
from tests.integration.test_browser import browser, new_page, shot, sign_in  # noqa: F401

pytestmark = pytest.mark.daemons  # Chromium

ROOT_PW = "root passphrase 123"
CODE_LABEL = "Code from your authenticator app, or a recovery code"


def app_code(key_text: str, steps: int = 0) -> str:
    """What an authenticator app holding the base32 key shows now (or `steps` later)."""
    key = key_text.replace(" ", "")
    raw = base64.b32decode(key + "=" * (-len(key) % 8))
    totp = TOTP(raw, step=30, t0=0, digits=6, drift=steps)
    totp.time = time.time()
    return f"{totp.token():06d}"


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()


def second_step(page, typed: str) -> None:
    page.get_by_label(CODE_LABEL).fill(typed)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def test_enrol_then_sign_in_with_a_code_replay_refused_recovery_code_once(
        transactional_db, live_server, browser):  # noqa: F811
    account_services.create_admin(actor="t", username="root@panel.test", password=ROOT_PW,
                                  superadmin=True)
    page = new_page(browser, live_server)
    sign_in(page, "root@panel.test", ROOT_PW)
    page.goto("/account/")
    page.get_by_role("link", name="Two-factor sign-in", exact=True).click()
    page.get_by_role("link", name="Set up two-factor sign-in").click()
    page.get_by_role("heading", name="Set up two-factor sign-in").wait_for()
    assert page.locator("figure.qr svg path").count() == 1  # drawn by the panel itself
    key = page.locator("#totp-secret").text_content() or ""
    shot(page, "two-factor-enrol")
    page.get_by_label("Your password").fill(ROOT_PW)
    page.get_by_label("The six-digit code the app shows now").fill(app_code(key))
    page.get_by_role("button", name="Turn on").click()
    codes = page.locator("#recovery-codes code").all_text_contents()
    assert len(codes) == 10
    page.get_by_role("link", name="I have kept them").click()
    assert "10 recovery codes left" in (page.locator("#two-factor-state").text_content() or "")
    sign_out(page)

    # The password alone: the second step, and no page behind it.
    sign_in(page, "root@panel.test", ROOT_PW)
    page.get_by_role("heading", name="Second step").wait_for()
    for path in ("/", "/domains/", "/account/", "/two-factor/", "/admins/", "/audit/"):
        page.goto(path)
        assert page.url.startswith(f"{live_server.url}/login/"), (path, page.url)
        assert page.get_by_role("heading", name="Sign in").is_visible()

    sign_in(page, "root@panel.test", ROOT_PW)
    used = app_code(key, steps=1)  # the enrolment's own code is spent
    second_step(page, used)
    page.get_by_role("link", name="My account").wait_for()
    assert page.url == f"{live_server.url}/"
    sign_out(page)

    # The same code again: refused.
    sign_in(page, "root@panel.test", ROOT_PW)
    second_step(page, used)
    page.get_by_text("That code is wrong, or was used already.").wait_for()
    assert page.get_by_role("heading", name="Second step").is_visible()

    # A recovery code: once.
    second_step(page, codes[0])
    page.get_by_text("You signed in with a recovery code; 9 left.").wait_for()
    sign_out(page)
    sign_in(page, "root@panel.test", ROOT_PW)
    second_step(page, codes[0])
    page.get_by_text("That code is wrong, or was used already.").wait_for()
    shot(page, "two-factor-refused")


def test_sessions_signed_in_before_two_factor_applied_are_held_or_ended(
        transactional_db, live_server, browser):  # noqa: F811
    """Sign-in checks the second step, but a session may be older than the rule: a
    superadmin requiring two-factor for all admins holds a domain admin's open session at
    enrolment; the owner turning it on in one session ends their other one."""
    domain = domain_services.create_domain(actor="t", name="held.example")
    account_services.create_admin(actor="t", username="dan@held.example", password=ROOT_PW,
                                  domains=[domain])
    dan = new_page(browser, live_server)
    sign_in(dan, "dan@held.example", ROOT_PW)
    dan.goto("/domains/")
    dan.get_by_role("link", name="held.example").wait_for()
    other = new_page(browser, live_server)  # the same account in a second browser
    sign_in(other, "dan@held.example", ROOT_PW)
    other.goto("/domains/")
    other.get_by_role("link", name="held.example").wait_for()

    twofactor.set_required_for_all_admins(actor="root@panel.test", required=True)
    for path in ("/domains/", "/domains/held.example/", "/account/", "/audit/"):
        dan.goto(path)
        assert dan.url == f"{live_server.url}/two-factor/enrol/", (path, dan.url)
        dan.get_by_role("heading", name="Set up two-factor sign-in").wait_for()
    assert dan.get_by_role("alert").text_content().startswith("This account must sign in")
    key = dan.locator("#totp-secret").text_content() or ""
    dan.get_by_label("Your password").fill(ROOT_PW)
    dan.get_by_label("The six-digit code the app shows now").fill(app_code(key))
    dan.get_by_role("button", name="Turn on").click()
    assert len(dan.locator("#recovery-codes code").all_text_contents()) == 10
    dan.goto("/domains/")
    dan.get_by_role("link", name="held.example").wait_for()  # this session went through

    # The second browser never passed the step of the authenticator set up just now.
    other.goto("/domains/")
    assert other.url.startswith(f"{live_server.url}/login/"), other.url
    other.get_by_role("heading", name="Sign in").wait_for()
    shot(other, "two-factor-older-session-ended")
