"""The first day of a new mail admin, in a real browser at desktop and phone width:
fresh install -> sign in -> mail host setup -> first domain (with postmaster@ and
abuse@) -> the zone to publish -> a mailbox with a generated password -> the
welcome sheet -> the autoconfig XML over HTTP -> an IMAP login with what it says.

Pages are reached by in-page links and buttons (or URLs), never the top
navigation, which folds into a menu at phone width.
"""

from __future__ import annotations

import io
import re
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from django.core.management import call_command
from django.test import override_settings

from domains.models import Alias, Domain
from mailhost.models import MailHost
from tests.conftest import change_host
from tests.integration.mailstack import HOSTNAME
from tests.integration.test_browser import CSP_VIOLATIONS, browser, shot  # noqa: F401
from tests.integration.test_clientsetup import LoopbackIMAP, trusting_the_stack

pytestmark = pytest.mark.daemons  # Chromium and the stack's Dovecot

WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def served(stack):
    # The stack's Dovecot has no IMAPS listener; its IMAP port is the probe's.
    with override_settings(MAILADMIN_IMAP_LISTEN=f"127.0.0.1:{stack.ports['imap']}",
                           MAILADMIN_IMAPS_PORT=0):
        yield stack


def first_admin() -> tuple[str, str]:
    """What bin/run does on a first start: `manage.py quickstart` prints the first admin."""
    out = io.StringIO()
    call_command("quickstart", stdout=out)
    found = re.search(r"as '([^']+)' with password '([^']+)'", out.getvalue())
    assert found, out.getvalue()
    return found.group(1), found.group(2)


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_first_day(served, live_server, browser, width):  # noqa: F811
    stack = served
    # A fresh install: the mail host row as the embedded default makes it.
    change_host(mail_hostname="localhost", mx_hosts=[], public_ipv4=[], public_ipv6=[])
    username, password = first_admin()

    context = browser.new_context(base_url=live_server.url, viewport=WIDTHS[width])
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", lambda message: CSP_VIOLATIONS.append(f"{page.url}: {message.text}")
            if "Content Security Policy" in message.text else None)

    page.goto("/login/")
    page.get_by_label("Mail address or user name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Get started").wait_for()
    shot(page, f"first-day-dashboard-{width}")

    # Step 1: the mail host's name and addresses.
    page.get_by_role("link", name="Set up the mail host").click()
    page.get_by_role("heading", name="Set up the mail host").wait_for()
    page.get_by_label("Mail host name").fill("localhost")
    page.get_by_label("Public IPv4 addresses").fill("192.0.2.10")
    page.get_by_role("button", name="Save and continue").click()
    page.get_by_text("is not a public DNS name").wait_for()  # the default is refused
    page.get_by_label("Mail host name").fill(HOSTNAME)
    page.get_by_label("Public IPv6 addresses").fill("2001:db8::10")
    shot(page, f"first-day-setup-{width}")
    page.get_by_role("button", name="Save and continue").click()
    page.get_by_text(f"Saved the mail host {HOSTNAME}.").wait_for()
    host = MailHost.current()
    assert (host.mail_hostname, host.public_ipv4, host.public_ipv6) == (
        HOSTNAME, ["192.0.2.10"], ["2001:db8::10"])

    # Step 2: the first domain, with postmaster@ and abuse@.
    page.get_by_role("link", name="Add the first domain").click()
    page.get_by_role("heading", name="Your first domain").wait_for()
    page.get_by_label("Domain name").fill("example.org")
    assert page.get_by_label("Create postmaster@ and abuse@").is_checked()
    page.get_by_label("postmaster@ and abuse@ deliver to").fill("hostmaster@elsewhere.example")
    shot(page, f"first-day-domain-{width}")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("heading", name="example.org", exact=True).wait_for()
    assert Domain.objects.filter(name="example.org").exists()
    assert sorted(Alias.objects.values_list("source", flat=True)) == [
        "abuse@example.org", "postmaster@example.org"]

    # The domain's page: its checklist and the zone to publish, before any check.
    checklist = page.locator(".domain-checklist")
    for done in ("postmaster@example.org receives mail", "abuse@example.org receives mail"):
        assert checklist.locator("li.done", has_text=done).count() == 1
    assert checklist.locator("li.todo", has_text="A first mailbox").count() == 1
    assert checklist.get_by_role("link", name="Create a mailbox").count() == 1
    zone = page.locator("#zone-text").text_content() or ""
    assert f"example.org. 3600 IN MX 10 {HOSTNAME}." in zone
    assert "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10" in zone
    assert "localhost" not in "\n".join(
        line for line in zone.splitlines() if not line.startswith(";"))
    shot(page, f"first-day-domain-page-{width}")

    # A mailbox with a generated password, shown once.
    page.locator(".heading").get_by_role("link", name="New mailbox").click()
    page.get_by_label("Address", exact=True).fill("bob")
    page.get_by_role("button", name="Add mailbox").click()
    page.get_by_text("bob@example.org is ready").wait_for()
    generated = page.locator("code.secret").inner_text().strip()
    assert len(generated) >= 12
    shot(page, f"first-day-password-{width}")

    # The welcome sheet (a tab of its own, to print) names the servers the
    # autoconfig gives, and carries the generated password this once.
    with context.expect_page() as opened:
        page.get_by_role("link", name="Welcome sheet to print").click()
    sheet = opened.value
    sheet.get_by_role("heading", name="Your mailbox bob@example.org").wait_for()
    assert sheet.locator("#welcome-password").inner_text().strip() == generated
    assert sheet.get_by_role("button", name="Copy").is_visible()
    servers = sheet.locator("table.servers").inner_text()
    assert HOSTNAME in servers and str(stack.ports["imap"]) in servers
    shot(sheet, f"first-day-welcome-{width}")
    sheet.reload()
    sheet.get_by_role("heading", name="Your mailbox bob@example.org").wait_for()
    assert sheet.locator("#welcome-password").count() == 0
    assert generated not in sheet.content()
    context.close()

    # A mail program asks the panel over HTTP, then signs in where it was told.
    url = f"{live_server.url}/mail/config-v1.1.xml?emailaddress=bob%40example.org"
    with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 (our live server)
        assert response.status == 200
        root = ET.fromstring(response.read())  # noqa: S314 (our own answer)
    incoming = next(root.iter("incomingServer"))
    imap_host, imap_port = incoming.findtext("hostname"), int(incoming.findtext("port") or 0)
    assert (imap_host, imap_port, incoming.findtext("socketType"),
            incoming.findtext("username")) == (HOSTNAME, stack.ports["imap"], "STARTTLS",
                                               "%EMAILADDRESS%")
    imap = LoopbackIMAP(imap_host, imap_port, timeout=20)
    try:
        imap.starttls(trusting_the_stack(stack))
        assert imap.login("bob@example.org", generated)[0] == "OK"
    finally:
        imap.logout()
