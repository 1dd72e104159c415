"""The daily health report: who gets what, what counts as a change, when it is (not) sent."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.contrib.auth.models import User
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dnscheck import report, selectors, tasks
from dnscheck import services as dnscheck_services
from dnscheck.models import HealthReport, Verdict
from domains import services
from tests.conftest import change_host
from tests.dnscheck import ERROR, OK, UNKNOWN, WARNING, make_run

T0 = datetime(2030, 3, 1, 7, 0, tzinfo=UTC)
SPF_RECORD = 'a.example. 3600 IN TXT "v=spf1 mx -all"'


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def by_recipient(outbox) -> dict[str, mail.EmailMultiAlternatives]:
    assert all(len(m.to) == 1 for m in outbox), "one recipient per e-mail"
    assert len({m.to[0] for m in outbox}) == len(outbox), "one e-mail per recipient"
    return {m.to[0]: m for m in outbox}


def html_of(message) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


@pytest.fixture
def history(world):
    """Two runs of each domain, a report between them.

    a.example: spf ok -> error (worse), dmarc warning -> ok (better).
    b.example: mx error -> ok (better), dkim gone, tls-rpt new.
    """
    make_run(world.a, [("mx", "", OK), ("spf", "", OK), ("dmarc", "", WARNING, "p=none")],
             finished=at(-2))
    make_run(world.b, [("mx", "", ERROR, "no MX record"), ("dkim", "s1", WARNING)],
             finished=at(-2))
    dnscheck_services.record_report(sent_at=at(-1), recipients=1, changes=0)
    make_run(world.a, [("mx", "", OK), ("spf", "", ERROR, "+all lets anyone send", SPF_RECORD),
                       ("dmarc", "", OK)], finished=at(1))
    make_run(world.b, [("mx", "", OK), ("tls-rpt", "", OK)], finished=at(1))
    # A mailbox user's session account: never a recipient.
    User.objects.create_user(username=f"mailbox:{world.bob.pk}", email="bob@a.example")
    return world


def test_each_admin_gets_their_domains_once(history, mailoutbox):
    assert report.send_reports(at(24)) == 3
    sent = by_recipient(mailoutbox)
    assert set(sent) == {"root@admin.test", "alice@a.example", "bert@b.example"}

    root = sent["root@admin.test"]
    assert root.subject == "mailadmin: 1 domain worse, 2 better (a.example, b.example)"
    assert "a.example" in root.body and "b.example" in root.body
    assert "a.example" in html_of(root) and "b.example" in html_of(root)

    alice = sent["alice@a.example"]
    assert alice.subject == "mailadmin: 1 domain worse, 1 better (a.example)"
    assert "b.example" not in alice.body + html_of(alice)

    bert = sent["bert@b.example"]
    assert bert.subject == "mailadmin: 1 domain better (b.example)"
    assert "a.example" not in bert.body + html_of(bert)
    for message in mailoutbox:
        assert message.from_email == "mailadmin@" + message.from_email.split("@")[1]


def test_worse_comes_before_better_then_new_and_gone(history, mailoutbox):
    report.send_reports(at(24))
    root = by_recipient(mailoutbox)["root@admin.test"]
    text, html = root.body, html_of(root)
    for part in (text, html):
        assert part.index("Worse") < part.index("spf") < part.index("Better")
        assert part.index("Better") < part.index("dmarc") < part.index("New checks")
        assert part.index("New checks") < part.index("tls-rpt") < part.index("No longer checked")
        assert part.index("No longer checked") < part.index("dkim s1")
        # The summary follows the changes.
        assert part.index("No longer checked") < part.index("All domains".upper()
                                                            if part is text else "All domains")
    assert "a.example  spf: ok -> error" in text
    assert "+all lets anyone send" in text
    assert SPF_RECORD in text, "a change for the worse says what to publish"
    assert "b.example  mx: error -> ok" in text


def test_the_summary_lists_every_domain_with_its_worst_verdict_and_counts(history, mailoutbox):
    report.send_reports(at(24))
    root = by_recipient(mailoutbox)["root@admin.test"]
    lines = root.body.split("ALL DOMAINS", 1)[1].splitlines()
    row_a = next(line for line in lines if line.strip().startswith("a.example"))
    row_b = next(line for line in lines if line.strip().startswith("b.example"))
    assert row_a.split()[:6] == ["a.example", "error", "2", "0", "0", "1"]
    assert row_b.split()[:6] == ["b.example", "ok", "2", "0", "0", "0"]
    assert lines.index(row_a) < lines.index(row_b), "the worst first"
    summary = html_of(root).split("All domains", 1)[1]
    assert summary.index(">a.example<") < summary.index(">b.example<")


def test_the_html_part_is_self_contained(history, mailoutbox):
    report.send_reports(at(24))
    html = html_of(by_recipient(mailoutbox)["root@admin.test"])
    for external in ("<link", "<script", "<img", "http://", "https://", "<style", "url("):
        assert external not in html
    assert 'style="' in html


def test_the_html_part_escapes_what_dns_said(world, mailoutbox):
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quoted"'
    make_run(world.a, [("spf", "", ERROR, hostile, '<b>"v=spf1"</b>')], finished=at(-1))
    assert report.send_reports(at(0)) == 2
    message = by_recipient(mail.outbox)["alice@a.example"]
    html = html_of(message)
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "&amp; &quot;quoted&quot;" in html
    assert hostile in message.body, "the plain-text part shows it as it is"


def test_no_report_when_nothing_changed(world, mailoutbox):
    make_run(world.a, [("mx", "", OK), ("spf", "", WARNING)], finished=at(-2))
    dnscheck_services.record_report(sent_at=at(-1), recipients=1, changes=0)
    make_run(world.a, [("mx", "", OK), ("spf", "", WARNING)], finished=at(1))
    assert report.send_reports(at(24)) == 0
    assert mailoutbox == []
    assert HealthReport.objects.count() == 1, "nothing sent, nothing recorded"


def test_a_change_that_came_back_is_no_change(world, mailoutbox):
    make_run(world.a, [("mx", "", OK)], finished=at(-2))
    dnscheck_services.record_report(sent_at=at(-1), recipients=1, changes=0)
    make_run(world.a, [("mx", "", ERROR)], finished=at(1))
    make_run(world.a, [("mx", "", OK)], finished=at(2))
    assert report.send_reports(at(24)) == 0


def test_only_admins_whose_domains_changed_get_one(world, mailoutbox):
    make_run(world.a, [("mx", "", OK)], finished=at(-2))
    make_run(world.b, [("mx", "", OK)], finished=at(-2))
    dnscheck_services.record_report(sent_at=at(-1), recipients=1, changes=0)
    make_run(world.b, [("mx", "", UNKNOWN, "timed out")], finished=at(1))
    assert report.send_reports(at(24)) == 2
    sent = by_recipient(mailoutbox)
    assert set(sent) == {"root@admin.test", "bert@b.example"}
    # ok -> unknown: could not check, neither worse nor better.
    assert sent["bert@b.example"].subject == "mailadmin: 1 domain changed (b.example)"
    # The superadmin's summary still shows the unchanged domain.
    assert "a.example" in sent["root@admin.test"].body


def test_report_when_unchanged_is_configurable(world, mailoutbox, settings):
    settings.MAILADMIN_REPORT_WHEN_UNCHANGED = True
    make_run(world.a, [("mx", "", OK)], finished=at(-2))
    dnscheck_services.record_report(sent_at=at(-1), recipients=1, changes=0)
    assert report.send_reports(at(24)) == 3
    sent = by_recipient(mailoutbox)
    assert {m.subject for m in sent.values()} == {"mailadmin: DNS health unchanged"}
    assert "Nothing changed." in sent["root@admin.test"].body
    assert "b.example" in sent["root@admin.test"].body
    assert "never" in sent["bert@b.example"].body, "b.example was never checked"


def test_it_is_idempotent_within_20_hours_unless_forced(history, mailoutbox):
    assert report.send_reports(at(24)) == 3
    assert report.send_reports(at(25)) == 0
    assert report.send_reports(at(24 + 19.9)) == 0
    assert len(mailoutbox) == 3
    assert HealthReport.objects.latest().sent_at == at(24)
    # A day later nothing changed since the last report.
    assert report.send_reports(at(48)) == 0
    # Forced: sent even within the interval, changes or not.
    assert report.send_reports(at(48.5), force=True) == 3
    assert {m.subject for m in mailoutbox[3:]} == {"mailadmin: DNS health unchanged"}


def test_a_redelivered_task_mails_once(world, mailoutbox):
    make_run(world.a, [("spf", "", ERROR)], minutes_ago=5)
    tasks.send_report.apply()
    tasks.send_report.apply()
    assert len(mailoutbox) == 2
    assert HealthReport.objects.count() == 1


def test_the_first_report_lists_current_problems(world, mailoutbox):
    make_run(world.a, [("mx", "", OK), ("spf", "", ERROR, "two SPF records"),
                       ("dmarc", "", WARNING, "p=none")], finished=at(-1))
    make_run(world.b, [("mx", "", OK)], finished=at(-1))
    assert report.send_reports(at(0)) == 2
    sent = by_recipient(mailoutbox)
    assert set(sent) == {"root@admin.test", "alice@a.example"}, "b.example has no problem"
    text = sent["alice@a.example"].body
    assert "first report" in text
    assert "a.example  spf: none -> error" in text
    assert "a.example  dmarc: none -> warning" in text
    assert "mx:" not in text.split("ALL DOMAINS")[0], "ok checks are not changes"
    recorded = HealthReport.objects.get()
    assert (recorded.sent_at, recorded.recipients, recorded.changes) == (at(0), 2, 2)


def test_a_domain_first_checked_since_the_last_report_reports_its_problems(world, mailoutbox):
    make_run(world.a, [("mx", "", OK)], finished=at(-2))
    dnscheck_services.record_report(sent_at=at(-1), recipients=1, changes=0)
    make_run(world.b, [("mx", "", OK), ("ptr", "192.0.2.10", ERROR)], finished=at(1))
    assert report.send_reports(at(24)) == 2
    bert = by_recipient(mailoutbox)["bert@b.example"]
    assert "b.example  ptr 192.0.2.10: none -> error" in bert.body
    assert "mx:" not in bert.body.split("ALL DOMAINS")[0]


def test_runs_after_now_and_unfinished_runs_do_not_count(world, mailoutbox):
    make_run(world.a, [("mx", "", OK)], finished=at(-2))
    dnscheck_services.record_report(sent_at=at(-1), recipients=1, changes=0)
    make_run(world.a, [("mx", "", ERROR)], finished=at(30))
    make_run(world.a, [("mx", "", ERROR)], state="failed", finished=at(2))
    make_run(world.a, [], state="running")
    assert report.send_reports(at(24)) == 0


def test_inactive_admins_inactive_domains_and_admins_without_address_get_nothing(
        world, mailoutbox):
    from accounts import services as account_services
    from tests.conftest import ADMIN_PASSWORD

    world.admin_b.is_active = False
    world.admin_b.save()
    account_services.create_admin(actor="t", username="admin", password=ADMIN_PASSWORD,
                                  superadmin=True)
    services.set_domain_active(actor="t", domain=world.b, active=False)
    make_run(world.a, [("mx", "", ERROR)], finished=at(-1))
    make_run(world.b, [("mx", "", ERROR)], finished=at(-1))
    assert report.send_reports(at(0)) == 2
    sent = by_recipient(mailoutbox)
    assert set(sent) == {"root@admin.test", "alice@a.example"}
    assert "b.example" not in sent["root@admin.test"].body


def test_the_account_email_wins_over_the_user_name(world, mailoutbox):
    world.superadmin.email = "ops@elsewhere.test"
    world.superadmin.save()
    make_run(world.a, [("mx", "", ERROR)], finished=at(-1))
    report.send_reports(at(0))
    assert "ops@elsewhere.test" in by_recipient(mailoutbox)


def test_queries_do_not_grow_with_domains_or_results(world, mailoutbox):
    def count() -> int:
        HealthReport.objects.all().delete()
        mailoutbox.clear()
        with CaptureQueriesContext(connection) as queries:
            report.send_reports(at(24))
        return len(queries)

    change_host()  # the mail host row exists before either count, as on a running panel
    make_run(world.a, [("mx", "", OK)], finished=at(-2))
    dnscheck_services.record_report(sent_at=at(-1), recipients=1, changes=0)
    make_run(world.a, [("mx", "", ERROR)], finished=at(1))
    few = count()
    for n in range(12):
        domain = services.create_domain(actor="t", name=f"d{n}.example")
        results = [("dnsbl", f"192.0.2.{i} zen.example", OK) for i in range(20)]
        make_run(domain, results, finished=at(-2))
        make_run(domain, [*results[1:], ("mx", "", ERROR)], finished=at(1))
    assert count() == few


class FailsForBert(EmailBackend):
    def send_messages(self, messages):
        if any("bert@b.example" in m.to for m in messages):
            raise ConnectionResetError("connection reset by peer")
        return super().send_messages(messages)


def test_a_refused_recipient_does_not_stop_the_others(history, mailoutbox, settings, caplog):
    settings.EMAIL_BACKEND = "tests.dnscheck.test_report.FailsForBert"
    assert report.send_reports(at(24)) == 2
    assert {m.to[0] for m in mailoutbox} == {"root@admin.test", "alice@a.example"}
    assert "not delivered to bert@b.example" in caplog.text
    # Recorded: sending again would mail the other two twice.
    assert HealthReport.objects.latest().sent_at == at(24)


def test_an_unreachable_mail_server_is_logged_and_the_report_retried(history, settings, caplog,
                                                                    mailoutbox):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    assert report.send_reports(at(24)) == 0
    assert "cannot reach the mail server" in caplog.text
    recorded = HealthReport.objects.latest()
    assert (recorded.sent_at, recorded.recipients) == (at(24), 0)
    copies = list(recorded.deliveries.all())
    assert len(copies) == 3
    assert all(c.state == "pending" and c.attempts == 1 and "cannot reach" in c.error
               for c in copies)
    assert report.pending()
    # The mail server is back: the retry an hour later sends the same report, once each.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert report.send_reports(at(25)) == 3
    assert report.send_reports(at(26)) == 0
    assert len(mailoutbox) == 3
    assert not report.pending()
    recorded.refresh_from_db()
    assert recorded.recipients == 3
    # The same content it would have had: the changes since the report before it.
    assert all("Changes since the last report (2030-03-01" in m.body for m in mailoutbox)


def test_a_later_report_covers_what_a_missed_one_held(history, settings, mailoutbox):
    """A copy still refused when the next report is due is replaced by it: for that
    address the new one runs from the last report it received."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    assert report.send_reports(at(24)) == 0
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert report.send_reports(at(48)) == 3
    assert HealthReport.objects.latest().deliveries.filter(state="sent").count() == 3
    assert set(HealthReport.objects.get(sent_at=at(24)).deliveries.values_list(
        "state", flat=True)) == {"replaced"}
    sent = by_recipient(mailoutbox)
    # The changes of the missed report are in the one that went.
    assert "Changes since the last report (2030-03-01" in sent["alice@a.example"].body


class CutOffAfterTheFirst(EmailBackend):
    """The task's soft time limit strikes while the second copy goes out."""

    def send_messages(self, messages):
        if mail.outbox:
            raise SoftTimeLimitExceeded()
        return super().send_messages(messages)


def test_a_copy_that_went_is_recorded_before_the_next_is_sent(history, settings, mailoutbox):
    """A sender cut off half-way (its time limit, a killed worker, the database gone
    while recording) has recorded each copy the mail server took: the retry, once
    the cut-off sender's takes have lapsed, mails only the others."""
    settings.EMAIL_BACKEND = "tests.dnscheck.test_report.CutOffAfterTheFirst"
    with pytest.raises(SoftTimeLimitExceeded):
        report.send_reports(at(24))
    [first] = mailoutbox
    recorded = HealthReport.objects.latest()
    assert recorded.deliveries.get(address=first.to[0]).state == "sent"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert report.send_reports(at(24.5)) == 2
    assert len(by_recipient(mailoutbox)) == 3
    assert not report.pending()


def test_a_copy_is_taken_only_as_it_goes_out(history, settings, mailoutbox, monkeypatch):
    """Of a long list, the copies not yet reached are free for another sender: a take
    that lapsed while the list went out would send them twice."""
    taken_while_sending = []
    sent = EmailBackend.send_messages

    def send_and_look(backend, messages):
        taken_while_sending.append(recorded().deliveries.filter(taken__isnull=False).count())
        return sent(backend, messages)

    def recorded():
        return HealthReport.objects.latest()

    monkeypatch.setattr(EmailBackend, "send_messages", send_and_look)
    assert report.send_reports(at(24)) == 3
    assert taken_while_sending == [1, 1, 1]


def test_the_task_retries_with_a_growing_delay_up_to_an_hour():
    delays = [tasks.report_retry_delay(n) for n in range(tasks.REPORT_RETRIES + 1)]
    assert delays[:6] == [300, 600, 1200, 2400, 3600, 3600]
    assert delays[-1] is None
    assert sum(d for d in delays if d) / 3600 > 20, "until the next report is due"


def test_the_dashboard_shows_the_superadmin_who_missed_the_report(world, history, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    report.send_reports(at(24))
    page = world.client_for("superadmin").get(reverse("home")).content.decode()
    assert "The DNS health report did not reach everyone" in page
    assert "alice@a.example: cannot reach the mail server" in page
    admin_page = world.client_for("admin_a").get(reverse("home")).content.decode()
    assert "did not reach everyone" not in admin_page


# ---------------------------------------------------------------- unknown and vanished results


def test_error_to_unknown_is_not_reported_as_better(world, mailoutbox):
    # An unknown is "could not check" (a timeout, a SERVFAIL): it says nothing about the record.
    make_run(world.a, [("mx", "", OK), ("spf", "", ERROR, "no SPF record")], finished=at(-2))
    dnscheck_services.record_report(sent_at=at(-1), recipients=1, changes=0)
    make_run(world.a, [("mx", "", OK), ("spf", "", UNKNOWN, "timed out")], finished=at(1))
    assert report.send_reports(at(24)) == 2
    alice = by_recipient(mailoutbox)["alice@a.example"]
    assert alice.subject == "mailadmin: 1 domain changed (a.example)"
    for part in (alice.body, html_of(alice)):
        changed = part[:part.index("All domains".upper() if part is alice.body else "All domains")]
        assert "Better" not in changed and "Worse" not in changed
        assert "Could not check" in changed
    assert "a.example  spf: error -> unknown" in alice.body
    assert "#1b7a3a" not in html_of(alice).split("All domains")[0], "nothing green"


def test_the_page_and_the_report_agree_on_every_change(world):
    # One answer for each move, whichever the page or the report shows it.
    page_words = {"worsened": "worse", "improved": "better", "unchecked": "unchecked"}
    verdicts = [None, *Verdict]
    for before in verdicts:
        for after in verdicts:
            if before is None and after is None:
                continue
            previous = {} if before is None else {("mx", ""): (before, "r", "", 0)}
            current = {} if after is None else {("mx", ""): (after, "r", "", 0)}
            in_report = [c.kind for c in report.compare("a.example", previous, current)]
            rows_before = [make_row(before)] if before is not None else []
            rows_after = [make_row(after)] if after is not None else []
            on_page = [page_words.get(c.direction, c.kind)
                       for c in selectors.compare(rows_before, rows_after)]
            assert on_page == in_report, (before, after)


def test_a_vanished_result_is_no_longer_checked_on_page_and_report(world, mailoutbox):
    make_run(world.a, [("mx", "", OK), ("dkim", "s1", WARNING)], finished=at(-2))
    dnscheck_services.record_report(sent_at=at(-1), recipients=1, changes=0)
    make_run(world.a, [("mx", "", OK)], finished=at(1))
    assert report.send_reports(at(24)) == 2
    alice = by_recipient(mailoutbox)["alice@a.example"]
    assert "No longer checked" in alice.body and "Better" not in alice.body
    page = world.client_for("admin_a").get(
        reverse("domains:domain-detail", args=["a.example"])).content.decode()
    changes = page[page.index("Changes since the previous check"):page.index("Records to fix")]
    assert "no longer checked" in changes
    assert "Better" not in changes and "change-improved" not in changes


def make_row(verdict):
    class Row:
        check_name, subject, reason, record = "mx", "", "r", ""

    row = Row()
    row.verdict = verdict
    return row


# ---------------------------------------------------------------- no public host name


@pytest.fixture
def empty_dns(monkeypatch, settings):
    """Every name exists and has no records: each check that can suggest a record does."""
    from core.resolver import Answer, Resolver

    monkeypatch.setattr(Resolver, "_ask",
                        lambda self, name, rdtype, deadline: Answer(name, rdtype, "nodata"))
    settings.MAILADMIN_PUBLIC_IPV4 = ["192.0.2.10"]
    settings.MAILADMIN_PUBLIC_IPV6 = []


@pytest.mark.parametrize("hostname", ["localhost", "mail", "localhost.localdomain", "192.0.2.10"])
def test_no_record_names_a_host_name_that_is_not_public(world, mailoutbox, settings, empty_dns,
                                                         hostname):
    # The defaults: the machine's name (often "localhost"), and the MX hosts follow it.
    settings.MAILADMIN_MAIL_HOSTNAME = hostname
    settings.MAILADMIN_MX_HOSTS = [hostname]
    dnscheck_services.check_domains_now(actor="t", domains=[world.a])
    page = world.client_for("admin_a").get(
        reverse("domains:domain-detail", args=["a.example"])).content.decode()
    section = page[page.index('<section id="dns-health"'):page.index("</section>")]
    assert report.send_reports(at(0)) == 2
    body = by_recipient(mailoutbox)["alice@a.example"].body
    for shown in (section, body):
        assert " IN MX " not in shown and " IN PTR " not in shown
        assert f" {hostname}. " not in shown and f"{hostname}. IN " not in shown
        assert "Set the public name of this server (or its MX names) on the Mail host page" in shown
    records = section.split("Records to fix", 1)[1]
    # Not as a name in any record (as in "IN MX 10 mail." or "mail. IN A ...").
    assert not re.search(rf"(^|\s){re.escape(hostname)}\.(\s|$)", records, re.M)
    results = {r.check_name: r for r in world.a.check_runs.get().results.all()}
    assert results["mx"].verdict == Verdict.UNKNOWN, "not configured: not an error"
    assert "a.example. 3600 IN TXT" in records or "v=spf1" in records, "the rest still shows"


def test_a_public_host_name_is_suggested_in_the_mx_record(world, settings, empty_dns):
    settings.MAILADMIN_MAIL_HOSTNAME = "localhost"
    settings.MAILADMIN_MX_HOSTS = ["mail.example.net", "localhost"]
    dnscheck_services.check_domains_now(actor="t", domains=[world.a])
    mx = world.a.check_runs.get().results.get(check_name="mx")
    assert (mx.verdict, mx.record) == (Verdict.ERROR, "a.example. IN MX 10 mail.example.net.")
