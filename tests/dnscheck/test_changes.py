"""dnscheck.changes: how a result moves between two runs, alike on the page and in the report."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from dnscheck import changes, report, selectors
from dnscheck.changes import BETTER, CHECKED, GONE, NEW, UNCHECKED, WORSE
from domains import services as domain_services
from tests.dnscheck import ERROR, OK, UNKNOWN, WARNING, make_run

# (before, after, last known verdict before `before`, kind); None: no result.
CASES = [
    # Known to known.
    (ERROR, WARNING, None, BETTER),
    (ERROR, OK, None, BETTER),
    (WARNING, OK, None, BETTER),
    (OK, WARNING, None, WORSE),
    (OK, ERROR, None, WORSE),
    (WARNING, ERROR, None, WORSE),
    (OK, OK, None, None),
    (WARNING, WARNING, None, None),
    (ERROR, ERROR, None, None),
    # Anything to unknown: could not check, whatever was known before.
    (OK, UNKNOWN, None, UNCHECKED),
    (WARNING, UNKNOWN, None, UNCHECKED),
    (ERROR, UNKNOWN, None, UNCHECKED),
    (ERROR, UNKNOWN, OK, UNCHECKED),
    (UNKNOWN, UNKNOWN, None, None),
    (UNKNOWN, UNKNOWN, ERROR, None),
    # Unknown to known with nothing known before it: now checked.
    (UNKNOWN, OK, None, CHECKED),
    (UNKNOWN, WARNING, None, CHECKED),
    (UNKNOWN, ERROR, None, CHECKED),
    # Unknown to known: judged against the last known verdict.
    (UNKNOWN, OK, ERROR, BETTER),
    (UNKNOWN, OK, WARNING, BETTER),
    (UNKNOWN, WARNING, ERROR, BETTER),
    (UNKNOWN, WARNING, OK, WORSE),
    (UNKNOWN, ERROR, OK, WORSE),
    (UNKNOWN, ERROR, WARNING, WORSE),
    (UNKNOWN, OK, OK, CHECKED),
    (UNKNOWN, ERROR, ERROR, CHECKED),
    # A last known verdict matters only after an unknown.
    (OK, ERROR, ERROR, WORSE),
    (ERROR, OK, OK, BETTER),
    # A result that appears.
    (None, OK, None, NEW),
    (None, WARNING, None, WORSE),
    (None, ERROR, None, WORSE),
    (None, UNKNOWN, None, UNCHECKED),
    # A result that disappears is no longer checked, whatever it said.
    (OK, None, None, GONE),
    (WARNING, None, None, GONE),
    (ERROR, None, None, GONE),
    (UNKNOWN, None, None, GONE),
    (UNKNOWN, None, OK, GONE),
    (None, None, None, None),
]


@pytest.mark.parametrize(("before", "after", "last_known", "kind"), CASES)
def test_classify(before, after, last_known, kind):
    assert changes.classify(before, after, last_known) == kind
    key = ("spf", "")
    moved = changes.between({key: changes.Seen(before)} if before is not None else {},
                            {key: changes.Seen(after)} if after is not None else {},
                            last_known={key: last_known} if last_known is not None else None)
    assert [c.kind for c in moved] == ([kind] if kind else [])
    if kind is not None:
        [change] = moved
        assert change.improved == (kind == BETTER) and change.worsened == (kind == WORSE)


def test_a_vanished_warning_is_gone_even_while_its_check_still_runs():
    # A DNSBL zone taken out of the settings: the check runs for the others.
    before = {("dnsbl", "ip a.zone"): changes.Seen(WARNING),
              ("dnsbl", "ip b.zone"): changes.Seen(OK)}
    after = {("dnsbl", "ip b.zone"): changes.Seen(OK)}
    assert [(c.subject, c.kind) for c in changes.between(before, after)] == [
        ("ip a.zone", GONE)]


@pytest.mark.django_db
def test_the_page_and_the_report_classify_a_pair_of_runs_alike():
    domain = domain_services.create_domain(actor="t", name="a.example")
    now = timezone.now()
    # Three runs: the oldest is what the unknowns of the middle one hid.
    make_run(domain, [("mx", "", OK), ("spf", "", ERROR), ("dmarc", "", OK),
                      ("ptr", "192.0.2.10", WARNING)], finished=now - timedelta(hours=3))
    previous = make_run(domain, [
        ("mx", "", UNKNOWN), ("spf", "", UNKNOWN), ("dmarc", "", UNKNOWN),
        ("ptr", "192.0.2.10", UNKNOWN), ("tls-rpt", "", UNKNOWN), ("dkim", "s1", WARNING),
        ("mta-sts", "", OK), ("required-address", "abuse", ERROR),
    ], finished=now - timedelta(hours=2))
    current = make_run(domain, [
        ("mx", "", OK),  # unknown, ok before it: checked again, as it was
        ("spf", "", OK),  # unknown, error before it: better
        ("dmarc", "", ERROR),  # unknown, ok before it: worse
        ("ptr", "192.0.2.10", UNKNOWN),  # still unknown: no change
        ("tls-rpt", "", WARNING),  # unknown, never known: now checked
        ("mta-sts", "", UNKNOWN),  # could not check
        ("required-address", "abuse", OK),  # better
        ("dnsbl", "192.0.2.10 zen", ERROR),  # new with a problem: worse
        ("dkim", "s2", OK),  # new and ok; dkim s1 is gone
    ], finished=now - timedelta(hours=1))
    expected = {
        ("mx", ""): CHECKED, ("spf", ""): BETTER, ("dmarc", ""): WORSE,
        ("tls-rpt", ""): CHECKED, ("mta-sts", ""): UNCHECKED,
        ("required-address", "abuse"): BETTER, ("dnsbl", "192.0.2.10 zen"): WORSE,
        ("dkim", "s2"): NEW, ("dkim", "s1"): GONE,
    }

    on_page = {(c.check_name, c.subject): c.kind for c in selectors.health(domain).changes}
    summaries = report.domain_summaries(current.finished + timedelta(minutes=1),
                                        previous.finished + timedelta(minutes=1))
    in_report = {(c.check_name, c.subject): c.kind for c in summaries[domain.pk].changes}

    assert on_page == in_report == expected
    assert selectors.changes_since_previous(current) == selectors.health(domain).changes


@pytest.mark.django_db
def test_last_known_verdicts_look_only_before_the_run():
    domain = domain_services.create_domain(actor="t", name="a.example")
    other = domain_services.create_domain(actor="t", name="b.example")
    now = timezone.now()
    make_run(domain, [("spf", "", ERROR)], finished=now - timedelta(hours=4))
    make_run(domain, [("spf", "", WARNING), ("mx", "", UNKNOWN)],
             finished=now - timedelta(hours=3))
    make_run(other, [("mx", "", ERROR)], finished=now - timedelta(hours=3))
    hidden = make_run(domain, [("spf", "", UNKNOWN), ("mx", "", UNKNOWN)],
                      finished=now - timedelta(hours=2))
    make_run(domain, [("spf", "", OK)], finished=now - timedelta(hours=1))  # after: not seen

    found = selectors.last_known_verdicts({hidden.pk: {("spf", ""), ("mx", "")}})

    assert found == {hidden.pk: {("spf", ""): WARNING}}
