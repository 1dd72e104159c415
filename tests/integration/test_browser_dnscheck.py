""""Check now" in a real browser, run by a real Celery worker against real DNS.

Chromium (Playwright) drives the live panel; the task goes through Redis to a
`celery -A mailadmin worker` process pointed at this test run's database and
at the loopback Knot + Unbound servers of tests/integration/dnsserver.py. The
page must show the run in progress, follow it by htmx polling, and swap the
results in without a reload. Screenshots land in artifacts/screenshots/.
"""

from __future__ import annotations

import re
import time

import pytest
from django.test import override_settings
from playwright.sync_api import Locator, Page, expect

from accounts import services as account_services
from dnscheck.models import CheckRun, Verdict
from mailadmin.celery import app
from mailhost.models import MailHost
from tests.integration.dnsserver import (
    HEALTHY,
    MAIL_HOST,
    MAIL_IPV4,
    MAIL_IPV6,
    DnsServers,
)
from tests.integration.test_browser import browser, new_page, shot, sign_in  # noqa: F401
from tests.integration.test_celery_worker import Celery, celery  # noqa: F401

pytestmark = pytest.mark.daemons

DAN_PW = "domain admin pass 1"
QUEUE = "celery"  # the default queue, the one the worker consumes
# Everything on healthy.test is ok; on this one only SPF fails (it leaves our
# addresses out), so the one record to publish is the SPF record with them in.
SPF_BROKEN = "spf-not-ours.test"
SPF_FIX = (f'{SPF_BROKEN}. IN TXT "v=spf1 ip4:203.0.113.5 ip4:{MAIL_IPV4} '
           f'ip6:{MAIL_IPV6} -all"')
# Every htmx request the page makes, so the test can tell the polling happened.
WATCH_HTMX = """() => {
    window.__htmx = [];
    document.body.addEventListener("htmx:afterRequest", (event) => {
        window.__htmx.push([event.detail.requestConfig.verb,
                            event.detail.pathInfo.requestPath]);
    });
}"""


@pytest.fixture
def celery_env(dns_servers_session: DnsServers) -> dict[str, str]:
    """The worker resolves through the test Unbound, and knows healthy.test's mail host."""
    return dns_servers_session.environ


def _consuming(on: bool) -> None:
    """Stop or resume the worker taking tasks, and wait for it to say it did."""
    command = app.control.add_consumer if on else app.control.cancel_consumer
    replies = command(QUEUE, reply=True, timeout=5)
    assert replies, f"the worker did not answer {command.__name__}"


def _verdicts(section: Locator) -> dict[str, set[str]]:
    """What the results table shows: each check's verdict words (several rows for some)."""
    rows = section.locator("table.health-results tbody tr").evaluate_all(
        """rows => rows.map(row => [row.cells[1].querySelector("strong").textContent.trim(),
                                   row.cells[0].querySelector(".verdict").textContent])""")
    verdicts: dict[str, set[str]] = {}
    for check, badge in rows:
        # The badge is an icon and the word: "✓ ok".
        verdicts.setdefault(check, set()).add(badge.split()[-1])
    return verdicts


def _check_now_and_wait(page: Page, section: Locator) -> None:
    section.get_by_role("button", name="Check now").click()
    # A run is ~14 lookups on loopback; the margin is for a machine running both
    # suites and their daemons at once (load 6+ on 2 CPUs), where 30 s once fell short.
    expect(section.locator("table.health-results")).to_be_visible(timeout=90_000)
    expect(section.get_by_role("button", name="Check now")).to_be_enabled()


def test_check_now_follows_the_worker_until_the_results_appear(
        celery: Celery, dns_servers_session: DnsServers, live_server, browser):  # noqa: F811
    dns = dns_servers_session
    # The mail host row as the worker knows it (its environment): the domain
    # page reads the row (its records to publish) before the worker does, and
    # the first to read it makes it from its own settings.
    with override_settings(**dns.overrides):
        MailHost.current()
    healthy = dns.create_domain(HEALTHY)
    broken = dns.create_domain(SPF_BROKEN)
    account_services.create_admin(actor="t", username=f"dan@{HEALTHY}", password=DAN_PW,
                                  domains=[healthy, broken])

    page = new_page(browser, live_server)
    sign_in(page, f"dan@{HEALTHY}", DAN_PW)
    page.goto(f"/domains/{HEALTHY}/")
    section = page.locator("#dns-health")
    expect(section.get_by_text("Not checked yet.")).to_be_visible()
    # Set in this document only: a reload or a navigation would lose both.
    page.evaluate("window.__marker = 1")
    page.evaluate(WATCH_HTMX)

    # The worker holds off while the page shows the run queued, so the
    # in-progress state is seen every time, not only when the worker is slow.
    _consuming(False)
    started = time.monotonic()
    try:
        section.get_by_role("button", name="Check now").click()
        checking = section.get_by_role("button", name="Checking…")
        expect(checking).to_be_visible()
        expect(checking).to_be_disabled()
        expect(section.get_by_role("status")).to_contain_text("Waiting for a worker since")
        expect(section).to_have_attribute("hx-trigger", "every 2s")
        run = CheckRun.objects.get(domain=healthy)
        assert run.state == CheckRun.State.QUEUED
        assert run.requested_by == f"dan@{HEALTHY}"
        # The section asks for itself again while the run is open...
        page.wait_for_function(
            """path => window.__htmx.some(([verb, p]) => verb === "get" && p === path)""",
            arg=f"/domains/{HEALTHY}/health/", timeout=10_000)
        expect(checking).to_be_visible()
        shot(page, "dns-health-checking")
    finally:
        _consuming(True)

    # ...until the worker has run it: then the results replace the progress line.
    results = section.locator("table.health-results")
    expect(results).to_be_visible(timeout=90_000)
    followed = time.monotonic() - started
    expect(section.get_by_role("status")).to_have_count(0)
    expect(section.get_by_role("button", name="Check now")).to_be_enabled()
    assert section.get_attribute("hx-trigger") is None  # the polling has ended
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert page.url == f"{live_server.url}/domains/{HEALTHY}/"
    polls = [p for verb, p in page.evaluate("window.__htmx") if verb == "get"]
    assert polls and set(polls) == {f"/domains/{HEALTHY}/health/"}

    verdicts = _verdicts(section)
    for check in ("mx", "spf", "dkim", "dmarc"):
        assert verdicts.get(check) == {"ok"}, (check, verdicts)
    assert set().union(*verdicts.values()) == {"ok"}, verdicts
    expect(section.locator(".health-summary")).to_contain_text(
        re.compile(r"Checked [\s\S]*\(asked by dan@healthy\.test\):\s+\d+ ok\."))
    # What real DNS answered, as the worker saw it.
    expect(results.locator("tr", has=page.locator("strong", has_text="mx"))
           ).to_contain_text(MAIL_HOST)
    expect(section.get_by_text("This is the first check of healthy.test.")).to_be_visible()
    expect(section.get_by_text("Nothing to publish: no check asks for a DNS change.")
           ).to_be_visible()
    shot(page, "dns-health")

    run.refresh_from_db()
    assert run.state == CheckRun.State.DONE
    assert run.worst == Verdict.OK
    assert run.results.filter(check_name__in=["mx", "spf", "dkim", "dmarc"]).count() == 4
    worker_log = celery.log("worker.log")
    assert "dnscheck.run_check" in worker_log
    assert re.search(r"Task dnscheck\.run_check\[[^\]]+\] succeeded", worker_log), worker_log

    # A domain whose SPF leaves our addresses out: the record to publish, ready to paste.
    page.goto(f"/domains/{SPF_BROKEN}/")
    page.evaluate("window.__marker = 2")
    _check_now_and_wait(page, section)
    assert page.evaluate("window.__marker") == 2, "the page was reloaded"
    verdicts = _verdicts(section)
    assert verdicts.pop("spf") == {"error"}
    assert set().union(*verdicts.values()) == {"ok"}, verdicts
    records = section.locator("#dns-records")
    expect(records).to_be_visible()
    assert SPF_FIX in records.inner_text().splitlines()
    shot(page, "dns-health-records")
    assert CheckRun.objects.get(domain=broken).state == CheckRun.State.DONE
    assert celery.log("worker.log").count("succeeded") >= 2
    print(f"\nthe page followed the run to its results in {followed:.1f} s")
