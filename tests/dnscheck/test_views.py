"""The DNS health section of a domain, "Check now", and the dashboard column, as the personas."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.models import AuditEntry
from dnscheck.models import CheckRun
from domains import services
from tests.dnscheck import ERROR, OK, UNKNOWN, WARNING, make_run

POLLING = 'hx-trigger="every 2s"'
SPF = 'a.example. 3600 IN TXT "v=spf1 mx -all"'


@pytest.fixture(autouse=True)
def dead_dns(settings):
    """No test here asks a real resolver: a closed loopback port answers nothing, fast."""
    settings.MAILADMIN_DNS_RESOLVERS = ["127.0.0.1@9"]
    settings.MAILADMIN_DNS_TIMEOUT = 0.2
    settings.MAILADMIN_DNS_TRIES = 1
    settings.MAILADMIN_DNS_DOMAIN_BUDGET = 3.0
    settings.MAILADMIN_PUBLIC_IPV4 = ["192.0.2.10"]
    settings.MAILADMIN_DNSBL_ZONES = ["zen.example"]
    settings.MAILADMIN_DNSBL_DOMAIN_ZONES = ["dbl.example"]


def detail(name: str = "a.example") -> str:
    return reverse("domains:domain-detail", args=[name])


def health_url(name: str = "a.example") -> str:
    return reverse("dnscheck:health", args=[name])


def check_url(name: str = "a.example") -> str:
    return reverse("dnscheck:check", args=[name])


def section_of(html: str) -> str:
    match = re.search(r'<section id="dns-health".*?</section>', html, re.S)
    assert match, "no DNS health section"
    return match.group(0)


# ---------------------------------------------------------------- check now


@pytest.mark.parametrize("persona", ["superadmin", "admin_a"])
def test_check_now_runs_the_checks_and_comes_back_to_the_domain(
        world, persona, django_capture_on_commit_callbacks):
    client = world.client_for(persona)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(check_url())
    assert response.status_code == 302
    assert response["Location"] == detail() + "#dns-health"
    run = CheckRun.objects.get(domain=world.a)
    # No broker: the task ran inline at commit. Dead DNS makes the answers unknown.
    assert run.state == CheckRun.State.DONE
    assert run.results.exists()
    assert AuditEntry.objects.filter(action="dnscheck.request", domain="a.example").count() == 1

    page = client.get(detail())
    section = section_of(page.content.decode())
    assert "Not checked yet" not in section
    assert POLLING not in section
    # Nothing answered: one banner names the resolver instead of a line per check.
    assert section.count("The DNS resolver 127.0.0.1:9 did not answer.") == 1
    assert "was not asked" not in section and "timed out" in section
    assert 'class="verdict verdict-unknown"' not in section
    assert "This is the first check of a.example." in section
    assert 'hx-post="' + check_url() + '"' in section
    assert "csrfmiddlewaretoken" in section


def test_check_now_records_who_asked(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        world.client_for("admin_a").post(check_url())
    assert CheckRun.objects.get(domain=world.a).requested_by == "alice@a.example"


def test_check_now_by_htmx_answers_the_section(world, django_capture_on_commit_callbacks):
    client = world.client_for("admin_a")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(check_url(), headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith("<section id=\"dns-health\"")
    assert "<html" not in html
    # The test's transaction holds the task back until the answer is rendered, so
    # the answer shows the run queued; its next poll finds it done.
    assert POLLING in html
    poll = client.get(health_url(), headers={"HX-Request": "true"}).content.decode()
    assert POLLING not in poll
    assert "The DNS resolver 127.0.0.1:9 did not answer." in poll


def test_with_a_worker_the_section_polls_until_the_run_is_done(world):
    """With a broker the run is only queued when the answer goes out: the section polls."""
    client = world.client_for("admin_a")
    # No capture of on_commit callbacks: the task is never run, as if a worker had not
    # picked it up yet.
    response = client.post(check_url(), headers={"HX-Request": "true"})
    run = CheckRun.objects.get(domain=world.a)
    assert run.state == CheckRun.State.QUEUED
    html = response.content.decode()
    assert POLLING in html
    assert f'hx-get="{health_url()}"' in html
    assert "Check now" not in html
    # Asking again while it is queued starts nothing new.
    client.post(check_url(), headers={"HX-Request": "true"})
    assert CheckRun.objects.filter(domain=world.a).count() == 1

    poll = client.get(health_url(), headers={"HX-Request": "true"})
    assert POLLING in poll.content.decode()
    assert "<html" not in poll.content.decode()

    CheckRun.objects.filter(pk=run.pk).update(state=CheckRun.State.RUNNING)
    assert "Checking since" in client.get(health_url(),
                                          headers={"HX-Request": "true"}).content.decode()

    CheckRun.objects.filter(pk=run.pk).delete()
    make_run(world.a, [("mx", "", ERROR, "no MX record")])
    done = client.get(health_url(), headers={"HX-Request": "true"}).content.decode()
    assert POLLING not in done and "hx-get" not in done
    assert "no MX record" in done
    assert "Check now" in done


def test_a_queued_run_makes_the_domain_page_poll(world):
    make_run(world.a, state=CheckRun.State.QUEUED)
    for persona in ("superadmin", "admin_a"):
        section = section_of(world.client_for(persona).get(detail()).content.decode())
        assert POLLING in section
        assert f'hx-get="{health_url()}"' in section
        assert 'hx-swap="outerHTML"' in section
        assert "Not checked yet" in section
        assert "<noscript>" in section


def test_without_a_run_the_section_says_not_checked_yet(world):
    section = section_of(world.client_for("admin_a").get(detail()).content.decode())
    assert "Not checked yet." in section
    assert POLLING not in section
    assert "Check now" in section


@pytest.mark.parametrize("persona", ["admin_b", "mailbox"])
def test_check_now_outside_reach_is_404_and_starts_nothing(
        world, persona, django_capture_on_commit_callbacks):
    client = world.client_for(persona)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(check_url()).status_code == 404
        assert client.post(check_url(), headers={"HX-Request": "true"}).status_code == 404
        assert client.post(check_url("none.example")).status_code == 404
        assert client.get(health_url(), headers={"HX-Request": "true"}).status_code == 404
    assert not CheckRun.objects.exists()


def test_check_now_anonymous_goes_to_sign_in(world):
    response = world.client_for("anonymous").post(check_url())
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert not CheckRun.objects.exists()


def test_check_now_is_post_only(world):
    client = world.client_for("superadmin")
    assert client.get(check_url()).status_code == 405
    assert client.put(check_url()).status_code == 405
    assert not CheckRun.objects.exists()


def test_admin_b_checks_their_own_domain(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = world.client_for("admin_b").post(check_url("b.example"))
    assert response.status_code == 302
    assert list(CheckRun.objects.values_list("domain__name", flat=True)) == ["b.example"]


# ---------------------------------------------------------------- the section


def test_results_show_colour_icon_and_word(world):
    make_run(world.a, [
        ("mx", "", OK, "MX points at mail.example.net", "", "10 mail.example.net.",
         "10 mail.example.net."),
        ("spf", "", ERROR, "no SPF record", SPF, "", "v=spf1 mx -all"),
        ("dmarc", "", WARNING, "p=none"),
        ("dnsbl", "192.0.2.10 zen.example", UNKNOWN, "timed out"),
    ])
    section = section_of(world.client_for("admin_a").get(detail()).content.decode())
    for css, icon, word in (("ok", "✓", "ok"), ("error", "✕", "error"),
                            ("warning", "!", "warning"), ("unknown", "?", "unknown")):
        badge = (f'<span class="verdict verdict-{css}"><span class="verdict-icon" '
                 f'aria-hidden="true">{icon}</span> {word}</span>')
        assert badge in section
    assert "192.0.2.10 zen.example" in section
    assert "MX points at mail.example.net" in section
    assert "<code>10 mail.example.net.</code>" in section
    assert "1 error, 1 warning, 1 unknown, 1 ok." in section
    assert '<time datetime="' in section
    assert "(asked by t)" in section


def test_changes_are_listed_worsened_first(world):
    make_run(world.a, [("mx", "", ERROR), ("spf", "", OK), ("dmarc", "", WARNING)],
             minutes_ago=60)
    make_run(world.a, [("mx", "", OK), ("spf", "", ERROR, "two SPF records"),
                       ("dmarc", "", WARNING), ("dkim", "mail", WARNING, "short key")])
    section = section_of(world.client_for("admin_a").get(detail()).content.decode())
    changes = section[section.index("Changes since the previous check"):
                      section.index("Records to fix")]
    items = re.findall(r'<li class="change-(\w+)">.*?<strong>([\w-]+)</strong>', changes, re.S)
    assert items == [("worsened", "spf"), ("worsened", "dkim"), ("improved", "mx")]
    assert "two SPF records" in changes
    assert "Worse" in changes and "Better" in changes
    assert "dmarc" not in changes


def test_no_changes(world):
    make_run(world.a, [("mx", "", OK)], minutes_ago=60)
    make_run(world.a, [("mx", "", OK)])
    section = section_of(world.client_for("admin_a").get(detail()).content.decode())
    assert "No changes since the previous check." in section


def test_the_records_to_publish_are_one_pre_block(world):
    make_run(world.a, [
        ("mx", "", OK, "fine", "a.example. 3600 IN MX 10 mail.example.net."),
        ("spf", "", ERROR, "no SPF record", SPF),
        ("dmarc", "", WARNING, "p=none", '_dmarc.a.example. 3600 IN TXT "v=DMARC1; p=reject"'),
    ])
    html = world.client_for("admin_a").get(detail()).content.decode()
    block = re.search(r'<pre class="zone"[^>]*>(.*?)</pre>', html, re.S)
    assert block
    assert block.group(1) == (
        "; spf: no SPF record\n"
        "a.example. 3600 IN TXT &quot;v=spf1 mx -all&quot;\n"
        "; dmarc: p=none\n"
        "_dmarc.a.example. 3600 IN TXT &quot;v=DMARC1; p=reject&quot;\n")
    assert "IN MX 10" not in block.group(1)


def test_nothing_to_publish(world):
    make_run(world.a, [("mx", "", OK, "fine", "a.example. IN MX 10 mail.")])
    html = section_of(world.client_for("admin_a").get(detail()).content.decode())
    assert '<pre class="zone"' not in html  # the records to publish are a section of their own
    assert "Nothing to publish" in html


def test_a_failed_run_is_said(world):
    make_run(world.a, [("mx", "", OK)], minutes_ago=30)
    make_run(world.a, state=CheckRun.State.FAILED, error="the worker stopped")
    section = section_of(world.client_for("admin_a").get(detail()).content.decode())
    assert "the worker stopped" in section
    assert "verdict-ok" in section


def test_markup_in_dns_answers_is_escaped(world):
    make_run(world.a, [("spf", "<script>x</script>", ERROR, "<b>bad</b>",
                        '"<img src=x onerror=alert(1)>"', "<i>seen</i>", "")])
    html = world.client_for("admin_a").get(detail()).content.decode()
    assert "<script>x</script>" not in html
    assert "<b>bad</b>" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html


def test_the_health_page_without_htmx_is_a_whole_page(world):
    make_run(world.a, [("mx", "", OK)])
    response = world.client_for("admin_a").get(health_url())
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and "<h1>a.example</h1>" in html
    assert 'id="dns-health"' in html


def test_the_domain_page_stays_at_a_flat_query_count(world):
    client = world.client_for("admin_a")
    make_run(world.a, [("mx", "", OK)], minutes_ago=70)
    make_run(world.a, [("mx", "", OK), ("spf", "", ERROR, "x", SPF)], minutes_ago=65)
    client.get(detail())
    with CaptureQueriesContext(connection) as few:
        client.get(detail())
    for minutes in range(10, 60, 10):
        make_run(world.a, [(f"check{i}", str(minutes), i % 4, "x", f"r{i}") for i in range(30)],
                 minutes_ago=minutes)
    make_run(world.a, [(f"check{i}", "", i % 4, "x", f"rec{i}") for i in range(30)])
    with CaptureQueriesContext(connection) as many:
        client.get(detail())
    assert len(many) == len(few)


# ---------------------------------------------------------------- dashboard


def dashboard_rows(html: str) -> dict[str, str]:
    rows = re.findall(r'<tr><td><a href="/domains/([^/]+)/">.*?</tr>', html, re.S)
    bodies = re.findall(r'(<tr><td><a href="/domains/[^/]+/">.*?</tr>)', html, re.S)
    return dict(zip(rows, bodies, strict=True))


def test_the_dashboard_shows_each_domains_worst_verdict(world):
    make_run(world.a, [("mx", "", ERROR), ("spf", "", OK)], minutes_ago=60)
    make_run(world.a, [("mx", "", OK), ("spf", "", WARNING)])
    make_run(world.b, state=CheckRun.State.QUEUED)
    rows = dashboard_rows(world.client_for("superadmin").get(reverse("home")).content.decode())
    assert "verdict-warning" in rows["a.example"] and "verdict-error" not in rows["a.example"]
    assert f'href="{health_url()}"' in rows["a.example"]
    assert "not checked" in rows["b.example"]
    assert "DNS health of b.example" in rows["b.example"]
    assert list(dashboard_rows(world.client_for("admin_a").get(reverse("home"))
                               .content.decode())) == ["a.example"]


@pytest.mark.parametrize("persona", ["superadmin", "admin_a"])
def test_the_dashboard_stays_at_a_flat_query_count(world, persona):
    from domains.models import DomainAdmin

    client = world.client_for(persona)

    def add_domains(start: int, stop: int) -> None:
        for n in range(start, stop):
            domain = services.create_domain(actor="t", name=f"d{n:02}.example")
            make_run(domain, [("mx", "", n % 4)], minutes_ago=60)
            make_run(domain, [("mx", "", (n + 1) % 4)])
            DomainAdmin.objects.create(user=world.admin_a, domain=domain)

    add_domains(0, 1)
    client.get(reverse("home"))
    with CaptureQueriesContext(connection) as few:
        html = client.get(reverse("home")).content.decode()
    assert html.count('class="health-link"') == (2 if persona == "admin_a" else 3)
    add_domains(1, 30)
    cache.clear()
    client.get(reverse("home"))
    with CaptureQueriesContext(connection) as many:
        html = client.get(reverse("home")).content.decode()
    assert html.count('class="health-link"') == 20
    assert len(many) == len(few)


def test_a_scheduled_run_says_so(world):
    run = make_run(world.a, [("mx", "", OK)])
    CheckRun.objects.filter(pk=run.pk).update(requested_by="beat")
    section = section_of(world.client_for("admin_a").get(detail()).content.decode())
    assert "(scheduled)" in section


def test_error_to_unknown_is_not_shown_as_better(world):
    # An unknown is "could not check": neither better nor worse, and not green.
    make_run(world.a, [("mx", "", OK), ("spf", "", ERROR)], minutes_ago=60)
    make_run(world.a, [("mx", "", OK), ("spf", "", UNKNOWN, "timed out")])
    section = section_of(world.client_for("admin_a").get(detail()).content.decode())
    changes = section[section.index("Changes since the previous check"):
                      section.index("Records to fix")]
    items = re.findall(r'<li class="change-(\w+)">.*?<strong>([\w-]+)</strong>', changes, re.S)
    assert items == [("unchecked", "spf")]
    assert "Could not check" in changes
    assert "Better" not in changes and "Worse" not in changes
