"""The panel in a real browser (Debian's Chromium, driven by Playwright), and the
result checked on the real daemons. Screenshots of the main pages land in
$MAILADMIN_TEST_ARTIFACTS/screenshots/ (default artifacts/ in the checkout).
"""

import os
import shutil
from pathlib import Path

import pytest

from accounts import services as account_services
from domains import services
from domains.models import Alias, Mailbox

pytestmark = pytest.mark.daemons

CHROMIUM = "/usr/bin/chromium"
# Test artifacts (screenshots): MAILADMIN_TEST_ARTIFACTS, or artifacts/ in the checkout
# (ignored by git). A test-only variable: the panel never reads it.
ARTIFACTS = Path(os.environ.get("MAILADMIN_TEST_ARTIFACTS")
                 or Path(__file__).resolve().parents[2] / "artifacts")
SHOTS = ARTIFACTS / "screenshots"
ROOT_PW = "root passphrase 123"
DAN_PW = "domain admin pass 1"
BOB_PW = "correct horse battery"


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the test's own
    # ORM calls are still plain synchronous code. Only for this test.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        message = "Chromium is not installed (bin/test installs Debian's chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # The flags keep Chromium from calling out to the (absent) internet.
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        CSP_VIOLATIONS.clear()
        try:
            yield instance
        finally:
            instance.close()
    # Chromium reports each blocked inline script or style on the console.
    assert not CSP_VIOLATIONS, "\n".join(CSP_VIOLATIONS)


# Console messages about the Content-Security-Policy, from every page of the test.
CSP_VIOLATIONS: list[str] = []


def new_page(browser, live_server):
    context = browser.new_context(base_url=live_server.url,
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", lambda message: CSP_VIOLATIONS.append(f"{page.url}: {message.text}")
            if "Content Security Policy" in message.text else None)
    return page


def sign_in(page, username: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Mail address or user name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_superadmin_domain_admin_and_mailbox_user_in_the_browser(stack, live_server, browser):
    account_services.create_admin(actor="t", username="root@panel.test", password=ROOT_PW,
                                  superadmin=True)

    # The superadmin creates a domain, a mailbox, an alias, and a domain admin.
    root = new_page(browser, live_server)
    sign_in(root, "root@panel.test", ROOT_PW)
    root.get_by_role("link", name="Domains").click()
    root.get_by_role("link", name="New domain").click()
    root.get_by_label("Domain name").fill("example.org")
    root.get_by_label("Mailbox limit").fill("2")
    # postmaster@ is made by hand below.
    root.get_by_label("Create postmaster@ and abuse@").uncheck()
    root.get_by_role("button", name="Save").click()
    root.get_by_role("heading", name="example.org").wait_for()
    root.get_by_role("link", name="New mailbox").click()
    root.get_by_label("Address").fill("bob")
    root.get_by_label("Password", exact=True).fill(BOB_PW)
    root.get_by_label("Password again").fill(BOB_PW)
    root.get_by_role("button", name="Add mailbox").click()
    root.get_by_text("Added bob@example.org.").wait_for()
    root.get_by_role("link", name="New alias", exact=True).click()
    root.get_by_label("Address", exact=True).fill("postmaster")
    root.get_by_label("Delivers to").fill("bob@example.org\nhelp@elsewhere.example")
    root.get_by_role("button", name="Add alias").click()
    root.get_by_text("Added postmaster@example.org.").wait_for()
    assert Alias.objects.get(source="postmaster@example.org").destination_list == [
        "bob@example.org", "help@elsewhere.example"]
    shot(root, "aliases")
    root.goto("/domains/example.org/")
    shot(root, "domain-page")
    root.get_by_role("link", name="Admins").click()
    root.get_by_role("link", name="New admin").click()
    root.get_by_label("User name").fill("dan@example.org")
    root.get_by_label("Password", exact=True).fill(DAN_PW)
    root.get_by_label("Password again").fill(DAN_PW)
    root.get_by_label("Domains").fill("example.org")
    root.get_by_role("button", name="Save").click()
    root.get_by_text("Added dan@example.org.").wait_for()
    shot(root, "admins")
    root.goto("/")
    shot(root, "dashboard")

    # The domain admin sees only their domain and is held to its limit.
    services.create_domain(actor="t", name="other.example")
    dan = new_page(browser, live_server)
    sign_in(dan, "dan@example.org", DAN_PW)
    dan.get_by_role("link", name="Domains").click()
    # count() does not wait: the click's page may still be loading under load.
    dan.get_by_role("heading", name="Domains").wait_for()
    dan.get_by_role("link", name="example.org", exact=True).wait_for()
    assert dan.get_by_role("link", name="example.org", exact=True).count() == 1
    assert dan.get_by_role("link", name="other.example").count() == 0
    assert dan.goto("/domains/other.example/").status == 404
    dan.goto("/domains/example.org/mailboxes/new/")
    dan.get_by_label("Address").fill("carol")
    dan.get_by_role("button", name="Add mailbox").click()  # generated password
    dan.get_by_text("carol@example.org is ready").wait_for()
    shot(dan, "generated-password")
    dan.goto("/domains/example.org/mailboxes/new/")
    dan.get_by_label("Address").fill("dave")
    dan.get_by_role("button", name="Add mailbox").click()
    dan.get_by_text("example.org has reached its limit of 2 mailboxes.").wait_for()
    assert not Mailbox.objects.filter(email="dave@example.org").exists()
    dan.goto("/mailboxes/")
    shot(dan, "mailbox-list")

    # The mailbox user changes the password; Dovecot takes it at once.
    bob = new_page(browser, live_server)
    sign_in(bob, "bob@example.org", BOB_PW)
    bob.get_by_role("heading", name="bob@example.org").wait_for()
    shot(bob, "my-mailbox")
    bob.get_by_role("link", name="Change my password").click()
    new = "a much better passphrase"
    bob.get_by_label("Current password").fill(BOB_PW)
    bob.get_by_label("New password", exact=True).fill(new)
    bob.get_by_text("Strength").wait_for()  # the htmx hint answered
    shot(bob, "change-password")
    bob.get_by_label("New password, again").fill(new)
    bob.get_by_role("button", name="Change password").click()
    bob.get_by_text("Your password is changed").wait_for()
    assert stack.imap_login_ok("bob@example.org", new)
    assert not stack.imap_login_ok("bob@example.org", BOB_PW)
