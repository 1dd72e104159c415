"""The reads behind the DNS health pages: latest and previous runs, changes, records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dnscheck import selectors
from dnscheck.changes import Change
from dnscheck.models import CheckRun
from domains import services
from domains.models import Domain
from tests.dnscheck import ERROR, OK, UNKNOWN, WARNING, make_run

SPF = 'a.example. 3600 IN TXT "v=spf1 mx -all"'
DMARC = '_dmarc.a.example. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@a.example"'


@pytest.fixture
def domain(db) -> Domain:
    return services.create_domain(actor="t", name="a.example")


def test_latest_run_is_the_last_done_run_with_its_results(domain):
    make_run(domain, [("mx", "", ERROR)], minutes_ago=30)
    latest = make_run(domain, [("mx", "", OK), ("spf", "", WARNING)], minutes_ago=10)
    make_run(domain, state=CheckRun.State.FAILED, minutes_ago=5, error="boom")
    make_run(domain, state=CheckRun.State.QUEUED)
    run = selectors.latest_run(domain)
    assert run == latest
    with CaptureQueriesContext(connection) as queries:
        assert [(r.check_name, r.verdict) for r in run.results.all()] == [("mx", OK),
                                                                           ("spf", WARNING)]
    assert len(queries) == 0, "results are prefetched"


def test_previous_run_skips_failed_and_open_runs(domain):
    first = make_run(domain, [("mx", "", ERROR)], minutes_ago=30)
    make_run(domain, state=CheckRun.State.FAILED, minutes_ago=20)
    second = make_run(domain, [("mx", "", OK)], minutes_ago=10)
    make_run(domain, state=CheckRun.State.RUNNING)
    assert selectors.previous_run(second) == first
    assert selectors.previous_run(first) is None
    assert [r.verdict for r in selectors.previous_results(second)] == [ERROR]
    assert selectors.previous_results(first) == []


def test_previous_run_of_runs_finished_at_the_same_instant_goes_by_id(domain):
    now = timezone.now()
    first = make_run(domain, [("mx", "", ERROR)], finished=now)
    second = make_run(domain, [("mx", "", OK)], finished=now)
    assert selectors.latest_run(domain) == second
    assert selectors.previous_run(second) == first
    assert selectors.previous_run(first) is None


def test_open_run(domain):
    assert selectors.open_run(domain) is None
    make_run(domain, [("mx", "", OK)])
    assert selectors.open_run(domain) is None
    queued = make_run(domain, state=CheckRun.State.QUEUED)
    assert selectors.open_run(domain) == queued
    CheckRun.objects.filter(pk=queued.pk).update(state=CheckRun.State.RUNNING)
    assert selectors.open_run(domain) == queued
    CheckRun.objects.filter(pk=queued.pk).update(state=CheckRun.State.DONE)
    assert selectors.open_run(domain) is None


def test_changes_new_gone_and_changed_worsened_first(domain):
    old = make_run(domain, [
        ("mx", "", OK),
        ("spf", "", ERROR),
        ("dmarc", "", WARNING),
        ("ptr", "192.0.2.10", ERROR),  # gone: no longer checked, not better
        ("dnsbl", "192.0.2.10 zen.spamhaus.org", OK),  # gone while ok: neither
        ("tls-rpt", "", WARNING),  # unchanged: not listed
    ], minutes_ago=60)
    new = make_run(domain, [
        ("mx", "", ERROR, "no MX record"),  # worse
        ("spf", "", OK),  # better
        ("dmarc", "", UNKNOWN),  # could not check: neither better nor worse
        ("tls-rpt", "", WARNING),
        ("dkim", "mail", WARNING),  # new and not ok: worse
        ("mta-sts", "", OK),  # new and ok: neither
        ("required-address", "abuse", UNKNOWN),  # new unknown: could not check
    ])
    changes = selectors.changes_since_previous(new)
    assert selectors.changes_since_previous(old) == []
    summary = [(c.check_name, c.subject, c.presence, c.direction,
                c.before.label if c.before is not None else "",
                c.after.label if c.after is not None else "") for c in changes]
    assert summary == [
        ("mx", "", "changed", "worsened", "ok", "error"),
        ("dkim", "mail", "new", "worsened", "", "warning"),
        ("spf", "", "changed", "improved", "error", "ok"),
        ("dmarc", "", "changed", "unchecked", "warning", "unknown"),
        ("required-address", "abuse", "new", "unchecked", "", "unknown"),
        ("mta-sts", "", "new", "unchanged", "", "ok"),
        ("ptr", "192.0.2.10", "gone", "unchanged", "error", ""),
        ("dnsbl", "192.0.2.10 zen.spamhaus.org", "gone", "unchanged", "ok", ""),
    ]
    assert changes[0].reason == "no MX record"
    assert changes[0].worsened and not changes[0].improved
    assert changes[2].improved
    assert not changes[3].improved and not changes[3].worsened
    assert not changes[6].improved, "a result that went away fixed nothing"


def test_a_move_to_or_from_unknown_is_neither_better_nor_worse(domain):
    make_run(domain, [("mx", "", ERROR), ("spf", "", UNKNOWN), ("dmarc", "", OK)],
             minutes_ago=60)
    new = make_run(domain, [("mx", "", UNKNOWN), ("spf", "", OK), ("dmarc", "", UNKNOWN)])
    changes = selectors.changes_since_previous(new)
    assert [(c.check_name, c.direction) for c in changes] == [
        ("mx", "unchecked"), ("dmarc", "unchecked"), ("spf", "checked")]
    assert not any(c.improved or c.worsened for c in changes)


def test_compare_takes_anything_shaped_like_a_result():
    class Row:
        def __init__(self, check_name, subject, verdict, reason="r", record=""):
            self.check_name, self.subject, self.verdict = check_name, subject, verdict
            self.reason, self.record = reason, record

    changes = selectors.compare([Row("mx", "", OK)], [Row("mx", "", WARNING, "why")])
    assert changes == [Change("mx", "", "worse", OK, WARNING, "why")]
    assert selectors.compare([], []) == []


def test_zone_records_one_block_with_a_comment_per_record(domain):
    run = make_run(domain, [
        ("mx", "", OK, "fine", "a.example. 3600 IN MX 10 mail.example.net."),  # ok: left out
        ("spf", "", ERROR, "no SPF record\nat all", SPF),
        ("dkim", "mail", WARNING, "the key is 1024 bits",
         'mail._domainkey.a.example. 3600 IN TXT ( "v=DKIM1; k=rsa; "\n  "p=MIIB" )'),
        ("dmarc", "", UNKNOWN, "timed out", ""),  # no record: left out
        ("ptr", "192.0.2.10", ERROR, "no PTR", "10.2.0.192.in-addr.arpa. IN PTR mail."),
        ("ptr", "192.0.2.11", ERROR, "no PTR", "10.2.0.192.in-addr.arpa. IN PTR mail."),
        ("dmarc", "x", WARNING, "", DMARC),
    ])
    block = selectors.zone_records(run.results.all())
    assert block == (
        "; spf: no SPF record at all\n"
        f"{SPF}\n"
        "; dkim mail: the key is 1024 bits\n"
        'mail._domainkey.a.example. 3600 IN TXT ( "v=DKIM1; k=rsa; "\n'
        '  "p=MIIB" )\n'
        "; ptr 192.0.2.10: no PTR\n"
        "10.2.0.192.in-addr.arpa. IN PTR mail.\n"
        "; dmarc x\n"
        f"{DMARC}\n"
    )
    assert selectors.zone_records([]) == ""


def test_with_worst_is_the_latest_done_runs_worst(db):
    now = timezone.now()
    a = services.create_domain(actor="t", name="a.example")
    b = services.create_domain(actor="t", name="b.example")
    c = services.create_domain(actor="t", name="c.example")
    make_run(a, [("mx", "", ERROR)], finished=now - timedelta(hours=2))
    make_run(a, [("mx", "", OK), ("spf", "", WARNING)], finished=now - timedelta(hours=1))
    make_run(a, state=CheckRun.State.FAILED, finished=now)
    make_run(a, state=CheckRun.State.RUNNING)
    make_run(b, [("mx", "", OK)], finished=now)
    make_run(c, state=CheckRun.State.QUEUED)
    with CaptureQueriesContext(connection) as queries:
        worst = {d.name: d.health_worst
                 for d in selectors.with_worst(Domain.objects.order_by("name"))}
    assert len(queries) == 1
    assert worst == {"a.example": WARNING, "b.example": OK, "c.example": None}


def test_health_gathers_the_section(domain):
    empty = selectors.health(domain)
    assert empty.run is None and empty.results == [] and empty.records == ""
    assert empty.pending is None and empty.failed is None
    make_run(domain, [("mx", "", OK), ("spf", "", OK)], minutes_ago=30)
    run = make_run(domain, [("mx", "", OK), ("spf", "", ERROR, "no SPF", SPF)], minutes_ago=20)
    failed = make_run(domain, state=CheckRun.State.FAILED, minutes_ago=10, error="cut off")
    queued = make_run(domain, state=CheckRun.State.QUEUED)
    health = selectors.health(domain)
    assert health.run == run and health.has_previous
    assert [c.check_name for c in health.changes] == ["spf"]
    assert health.records == f"; spf: no SPF\n{SPF}\n"
    assert health.pending == queued and health.failed == failed
    assert health.tally == [("error", 1), ("ok", 1)]


def test_a_failed_run_before_the_latest_result_is_not_shown(domain):
    make_run(domain, state=CheckRun.State.FAILED, minutes_ago=30)
    make_run(domain, [("mx", "", OK)], minutes_ago=20)
    assert selectors.health(domain).failed is None
