"""Every main page in a real browser at desktop (1280 px) and phone (390 px) width, light
and dark: a screenshot of each lands in the artifacts directory, and the test fails if
any page scrolls sideways at 390 px (naming the page and the element that sticks out).

Also proves the phone-width menu (a <details>, no script) and the stacked, labelled
table rows, and measures the contrast of the badges in both themes.

Screenshots: $MAILADMIN_TEST_ARTIFACTS/screenshots/pages/ (default artifacts/ in the
checkout, ignored by git). One browser for the whole test; a context per width, theme
and person.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone

from accounts import services as account_services
from apppasswords import services as app_password_services
from dkim import services as dkim_services
from dnscheck import services as dnscheck_services
from domains import services
from domains.models import Domain, KeptMaildir, Mailbox
from tests.conftest import change_host
from tests.integration.test_browser import (  # noqa: F401
    ARTIFACTS,
    CSP_VIOLATIONS,
    browser,
    sign_in,
)

pytestmark = pytest.mark.daemons  # Chromium

SHOTS = ARTIFACTS / "screenshots" / "pages"
ROOT_PW = "root passphrase 123"
USER_PW = "correct horse battery"
LONG_DOMAIN = "department-of-very-long-names.faculty-of-examples.example"
LONG_LOCAL = "christopher.alexander-montgomery-wellington"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# The element that makes the page wider than the window: of everything whose right edge
# passes the window's, the outermost (its parent still fits), described for a person.
SIDEWAYS = """() => {
  const doc = document.documentElement;
  const width = doc.clientWidth;
  if (doc.scrollWidth <= width) return null;
  const describe = (el) => {
    let text = el.tagName.toLowerCase();
    if (el.id) text += "#" + el.id;
    if (el.classList.length) text += "." + Array.from(el.classList).join(".");
    const words = (el.textContent || "").replace(/\\s+/g, " ").trim().slice(0, 60);
    return text + (words ? ' "' + words + '"' : "");
  };
  let widest = null;
  for (const el of document.body.querySelectorAll("*")) {
    const right = el.getBoundingClientRect().right;
    if (right <= width + 0.5) continue;
    const parent = el.parentElement;
    const parentRight = parent ? parent.getBoundingClientRect().right : 0;
    if (parent && parent !== document.body && parentRight > width + 0.5) continue;
    if (!widest || right > widest.right) widest = {right: Math.round(right), element: describe(el)};
  }
  return {scrollWidth: doc.scrollWidth, clientWidth: width, widest: widest};
}"""

# The text and background colours of each badge kind, made on the page from its classes.
BADGE_COLOURS = """() => {
  const kinds = ["verdict verdict-ok", "verdict verdict-warning", "verdict verdict-error",
                 "verdict verdict-unknown", "badge badge-disabled"];
  return kinds.map((kind) => {
    const span = document.createElement("span");
    span.className = kind;
    span.textContent = "x";
    document.body.appendChild(span);
    const style = getComputedStyle(span);
    const colours = [kind, style.color, style.backgroundColor];
    span.remove();
    return colours;
  });
}"""


def rsa_public() -> str:
    der = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key() \
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def realistic_data() -> dict[str, str]:
    """A host with a few domains, long names, disabled things, a check run and a DKIM key."""
    account_services.create_admin(actor="t", username="root@panel.test", password=ROOT_PW,
                                  superadmin=True)
    change_host(mail_hostname="mx.example.org", mx_hosts=["mx.example.org"],
                public_ipv4=["192.0.2.10"], public_ipv6=["2001:db8::10"])
    example = services.create_domain(actor="t", name="example.org", max_mailboxes=50,
                                     max_aliases=100, description="The main office")
    long = services.create_domain(actor="t", name=LONG_DOMAIN,
                                  description="A department with a very long domain name")
    old = services.create_domain(actor="t", name="old.example", description="Closed")
    services.set_domain_active(actor="t", domain=old, active=False)
    account_services.create_admin(actor="root@panel.test", username="dan@example.org",
                                  password=ROOT_PW, domains=[example])
    for local, name in [("bob", "Bob Builder"), ("carol", "Carol Singer"),
                        ("dave", "Dave Disabled"), ("erin", "")]:
        services.create_mailbox(actor="root@panel.test", email=f"{local}@example.org",
                                password=USER_PW, name=name, quota="2G")
    dave = Mailbox.objects.get(email="dave@example.org")
    services.set_mailbox_active(actor="root@panel.test", mailbox=dave, active=False)
    longest = services.create_mailbox(
        actor="root@panel.test", email=f"{LONG_LOCAL}@{LONG_DOMAIN}", password=USER_PW,
        name="Christopher Alexander Montgomery-Wellington")
    for name, protocols in [("Phone", ["imap", "smtp"]),
                            ("The shared family tablet in the living room upstairs", ["imap",
                                                                                      "sieve"])]:
        app_password_services.create_app_password(actor="root@panel.test", mailbox=longest,
                                                  name=name, protocols=protocols)
    services.create_alias(actor="root@panel.test", source="postmaster@example.org",
                          destinations=["bob@example.org", "carol@example.org",
                                        f"{LONG_LOCAL}@{LONG_DOMAIN}",
                                        "helpdesk-escalations@elsewhere.example"],
                          checked_domains=None)
    services.create_alias(actor="root@panel.test", source="sales@example.org",
                          destinations="carol@example.org", active=False, checked_domains=None)
    services.create_alias(actor="root@panel.test", source="@example.org",
                          destinations="bob@example.org", checked_domains=None)
    services.create_alias_domain(actor="root@panel.test", name="example.net", target=example)
    gone = services.create_mailbox(actor="root@panel.test", email="former@example.org",
                                   password=USER_PW)
    services.delete_mailbox(actor="root@panel.test", mailbox=gone)
    KeptMaildir.objects.create(
        address=f"{LONG_LOCAL}.old@{LONG_DOMAIN}", domain_ref=long.pk,
        path=f"/var/vmail/{LONG_DOMAIN}/{LONG_LOCAL}.old",
        deleted_at=timezone.now() - datetime.timedelta(days=3))
    dkim_services.set_key(actor="root@panel.test", domain=example, selector="mail2026",
                          public_key=rsa_public())
    # Every lookup goes to a closed loopback port: the run ends quickly, each check
    # unanswered, which is the state a new install's page shows before DNS is right.
    dnscheck_services.check_domains_now(actor="root@panel.test",
                                        domains=list(Domain.objects.filter(name="example.org")))
    return {
        "dashboard": "/",
        "domains": "/domains/",
        "domain-page": "/domains/example.org/",
        "domain-page-long": f"/domains/{LONG_DOMAIN}/",
        "mailboxes": "/mailboxes/",
        "mailbox-edit": f"/mailboxes/{LONG_LOCAL}@{LONG_DOMAIN}/",
        "mailbox-edit-disabled": "/mailboxes/dave@example.org/",
        "aliases": "/domains/example.org/aliases/",
        "alias-edit": "/aliases/postmaster@example.org/",
        "audit-log": "/audit/",
        "admins": "/admins/",
        "mail-host": "/mail-host/",
        "dns-health": "/domains/example.org/health/",
        "dkim-key": "/domains/example.org/health/dkim/",
        "csv-import": "/domains/example.org/import/",
        "kept-maildirs": "/kept-maildirs/",
        "welcome-sheet": f"/mailboxes/{LONG_LOCAL}@{LONG_DOMAIN}/welcome/",
        "client-records": "/domains/example.org/mail-clients/",
        "app-passwords": f"/mailboxes/{LONG_LOCAL}@{LONG_DOMAIN}/app-passwords/",
    }


USER_PAGES = {"my-mailbox": "/me/", "connect": "/me/mail-client/",
              "change-password": "/me/password/", "app-passwords": "/me/app-passwords/"}


def luminance(css: str) -> float:
    parts = css[css.index("(") + 1:css.index(")")].replace("/", ",").split(",")
    channels = [float(part) / 255 for part in parts[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


class Walk:
    """Visits pages in one browser context; remembers the pages that scroll sideways."""

    def __init__(self, chromium: Any, live_server: Any, viewport: dict[str, int],
                 scheme: str) -> None:
        self.context = chromium.new_context(base_url=live_server.url, viewport=viewport,
                                           color_scheme=scheme)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.page.on("console", lambda message: CSP_VIOLATIONS.append(
            f"{self.page.url}: {message.text}") if "Content Security Policy" in message.text
            else None)
        self.label = f"{viewport['width']}-{scheme}"
        self.sideways: list[str] = []

    def visit(self, name: str, url: str) -> None:
        response = self.page.goto(url)
        assert response is not None and response.status == 200, f"{name}: {url} answered " \
            f"{response.status if response else 'nothing'}"
        self.page.wait_for_load_state("load")
        self.check_and_shoot(name)

    def check_and_shoot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{self.label}-{name}.png"), full_page=True)
        wide = self.page.evaluate(SIDEWAYS)
        if wide is not None:
            self.sideways.append(
                f"{name} ({self.page.url}) at {self.label}: scrollWidth {wide['scrollWidth']} > "
                f"{wide['clientWidth']}; widest: {wide['widest']}")


def test_every_main_page_fits_at_phone_and_desktop_width_in_both_themes(
        transactional_db, live_server, browser):  # noqa: F811
    pages = realistic_data()
    sideways: list[str] = []
    for viewport, scheme in [(DESKTOP, "light"), (PHONE, "light"), (PHONE, "dark"),
                             (DESKTOP, "dark")]:
        anonymous = Walk(browser, live_server, viewport, scheme)
        anonymous.visit("sign-in", "/login/")
        admin = Walk(browser, live_server, viewport, scheme)
        sign_in(admin.page, "root@panel.test", ROOT_PW)
        for name, url in pages.items():
            admin.visit(name, url)
        # The mailbox user with the longest address: their name in the header must fit too.
        user = Walk(browser, live_server, viewport, scheme)
        sign_in(user.page, f"{LONG_LOCAL}@{LONG_DOMAIN}", USER_PW)
        for name, url in USER_PAGES.items():
            user.visit(name, url)
        if viewport == PHONE:
            user.page.get_by_text("Menu", exact=True).click()
            user.page.get_by_role("button", name="Sign out").wait_for()
            user.check_and_shoot("my-mailbox-menu-open")
        # Badges keep 4.5:1 in both themes.
        for kind, foreground, background in admin.page.evaluate(BADGE_COLOURS):
            ratio = contrast(foreground, background)
            assert ratio >= 4.5, f"{kind} at {admin.label}: {foreground} on {background} " \
                f"is {ratio:.2f}:1"
        for walk in (anonymous, admin, user):
            sideways += walk.sideways
            walk.context.close()
    assert not sideways, "pages scroll sideways:\n" + "\n".join(sideways)


def test_the_menu_collapses_at_phone_width_and_tables_stack_with_labels(
        transactional_db, live_server, browser):  # noqa: F811
    realistic_data()
    phone = Walk(browser, live_server, PHONE, "light")
    sign_in(phone.page, "root@panel.test", ROOT_PW)
    page = phone.page
    page.goto("/mailboxes/")
    menu = page.get_by_text("Menu", exact=True)
    domains_link = page.get_by_role("link", name="Domains", exact=True)
    assert menu.is_visible() and not domains_link.is_visible()
    # The keyboard opens it: the summary takes focus and Enter toggles it.
    menu.focus()
    page.keyboard.press("Enter")
    domains_link.wait_for(state="visible")
    assert page.get_by_role("button", name="Sign out").is_visible()
    assert page.get_by_text("root@panel.test").is_visible()
    phone.check_and_shoot("menu-open")
    page.keyboard.press("Enter")
    domains_link.wait_for(state="hidden")

    # Stacked rows: every cell of a mailbox row is shown, with its column's name.
    row = page.locator("#rows tbody tr", has_text="dave@example.org")
    cells = row.locator("td")
    assert [cells.nth(i).get_attribute("data-label") for i in range(cells.count())] == [
        "Address", "Name", "Quota", "State"]
    assert all(cells.nth(i).is_visible() for i in range(cells.count()))
    assert row.locator(".badge-disabled").inner_text() == "disabled"
    assert page.evaluate("getComputedStyle(document.querySelector('#rows tbody tr')).display") \
        == "block"
    # Rows swapped in by htmx (the search) are labelled too.
    page.get_by_label("Search mailboxes").fill("dave")
    page.locator("#rows tbody tr").filter(has_text="bob@example.org").wait_for(state="detached")
    assert page.locator("#rows tbody tr td").first.get_attribute("data-label") == "Address"
    phone.context.close()

    # At desktop width there is no menu button: the links are inline, as before.
    desktop = Walk(browser, live_server, DESKTOP, "light")
    sign_in(desktop.page, "root@panel.test", ROOT_PW)
    assert not desktop.page.get_by_text("Menu", exact=True).is_visible()
    assert desktop.page.get_by_role("link", name="Domains", exact=True).is_visible()
    assert desktop.page.evaluate(
        "getComputedStyle(document.querySelector('main table tbody tr')).display") == "table-row"
    desktop.context.close()


def test_the_sideways_check_names_the_element_that_sticks_out(
        transactional_db, live_server, browser):  # noqa: F811
    # The check above must not pass vacuously: a page made too wide is caught, and the
    # culprit named (the outermost element past the window's edge, not its children).
    phone = Walk(browser, live_server, PHONE, "light")
    phone.page.goto("/login/")
    phone.page.evaluate("""() => {
        const wide = document.createElement("div");
        wide.id = "too-wide";
        wide.appendChild(document.createElement("span")).textContent = "x".repeat(20);
        wide.firstChild.className = "inner";
        document.querySelector("main").appendChild(wide);
        wide.style.width = "900px";  // CSSOM: the Content-Security-Policy allows it
    }""")
    wide = phone.page.evaluate(SIDEWAYS)
    phone.context.close()
    assert wide is not None and wide["clientWidth"] == 390 and wide["scrollWidth"] > 390
    assert wide["widest"]["element"].startswith("div#too-wide")
