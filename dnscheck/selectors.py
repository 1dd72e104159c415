"""Reads of DNS health for the pages: latest results, what changed, what to publish."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from django.db import models
from django.db.models import OuterRef, Prefetch, Q, QuerySet, Subquery

from core import jobs
from dkim import selectors as dkim_keys
from dnscheck import changes as moves
from dnscheck.changes import Change
from dnscheck.models import CheckResult, CheckRun, HealthReport, ReportDelivery, Verdict
from domains.models import Domain

# Run ids per `IN (...)`: far below every backend's limit on query parameters.
CHUNK = 500


class Result(Protocol):
    """A stored CheckResult, or anything shaped like one."""

    check_name: str
    subject: str
    verdict: int
    reason: str
    record: str


def latest_run(domain: Domain) -> CheckRun | None:
    """The domain's latest finished (done) run, its results loaded in check order."""
    return (CheckRun.objects.filter(domain=domain, state=CheckRun.State.DONE)
            .order_by("-finished", "-pk")
            .prefetch_related(Prefetch("results", CheckResult.objects.order_by("id")))
            .first())


def previous_run(run: CheckRun) -> CheckRun | None:
    """The done run of the same domain before `run`, its results loaded."""
    if run.finished is None:
        return None
    earlier = Q(finished__lt=run.finished) | Q(finished=run.finished, pk__lt=run.pk)
    return (CheckRun.objects.filter(earlier, domain_id=run.domain_id, state=CheckRun.State.DONE)
            .order_by("-finished", "-pk")
            .prefetch_related(Prefetch("results", CheckResult.objects.order_by("id")))
            .first())


def previous_results(run: CheckRun) -> list[CheckResult]:
    """The results of the done run before `run` (empty when `run` is the first)."""
    previous = previous_run(run)
    return list(previous.results.all()) if previous else []


def open_run(domain: Domain) -> CheckRun | None:
    """The domain's queued or running run, if any."""
    return (CheckRun.objects.filter(domain=domain, state__in=jobs.OPEN)
            .order_by("-pk").first())


def compare(before: Iterable[Result], after: Iterable[Result],
            last_known: Mapping[moves.Key, int] | None = None) -> list[Change]:
    """What differs between two sets of results, as dnscheck.changes decides (as the report).

    `last_known`: the last verdict other than unknown, before `before`, of the
    results unknown in `before` (see last_known_verdicts). Worse first, then
    better, could not check, now checked, new, gone; within a kind the worst
    verdict comes first, then check and subject.
    """
    changes = moves.between(_seen(before), _seen(after), last_known=last_known)

    def order(change: Change) -> tuple[int, int, str, str]:
        worst = max(change.before or Verdict.OK, change.after or Verdict.OK)
        return (moves.ORDER[change.kind], -worst, change.check_name, change.subject)

    return sorted(changes, key=order)


def _seen(results: Iterable[Result]) -> dict[moves.Key, moves.Seen]:
    return {(r.check_name, r.subject): moves.Seen(r.verdict, r.reason, r.record, position)
            for position, r in enumerate(results)}


def changes_between(previous: CheckRun, run: CheckRun) -> list[Change]:
    """What changed from done run `previous` to `run` of the same domain, history included."""
    before, after = list(previous.results.all()), list(run.results.all())
    wanted = moves.unknown_then_known(_seen(before), _seen(after))
    known = last_known_verdicts({previous.pk: wanted})[previous.pk] if wanted else {}
    return compare(before, after, known)


def changes_since_previous(run: CheckRun) -> list[Change]:
    """What changed in `run` since the domain's previous done run (empty for the first)."""
    previous = previous_run(run)
    if previous is None:
        return []
    return changes_between(previous, run)


def last_known_verdicts(wanted: Mapping[int, Collection[moves.Key]]
                        ) -> dict[int, dict[moves.Key, int]]:
    """For each done run id in `wanted`, the last verdict other than unknown of each of
    its given results in its domain's done runs before it.

    What an unknown hid: dnscheck.changes judges a result known again
    against it. One query for the runs, one per CHUNK of them for the results.
    """
    found: dict[int, dict[moves.Key, int]] = {pk: {} for pk in wanted}
    runs = {pk: (domain_id, finished) for pk, domain_id, finished in
            CheckRun.objects.filter(pk__in=[pk for pk, keys in wanted.items() if keys])
            .values_list("pk", "domain_id", "finished") if finished is not None}
    ids = sorted(runs)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        of_domain: dict[int, list[int]] = {}
        for pk in chunk:
            of_domain.setdefault(runs[pk][0], []).append(pk)
        rows = (CheckResult.objects
                .filter(run__domain_id__in=list(of_domain), run__state=CheckRun.State.DONE,
                        run__finished__lte=max(runs[pk][1] for pk in chunk),
                        check_name__in=sorted({k[0] for pk in chunk for k in wanted[pk]}))
                .exclude(verdict=Verdict.UNKNOWN)
                .order_by("-run__finished", "-run_id")
                .values_list("run__domain_id", "run_id", "run__finished", "check_name",
                             "subject", "verdict"))
        for domain_id, run_id, finished, check_name, subject, verdict in rows.iterator():
            key = (check_name, subject)
            for pk in of_domain[domain_id]:
                if (finished, run_id) < (runs[pk][1], pk) and key in wanted[pk]:
                    found[pk].setdefault(key, verdict)
    return found


def zone_records(results: Iterable[Result]) -> str:
    """The records to publish, as one block to paste into a zone file.

    Each record follows a comment naming the check that wants it; a record
    wanted by several results is written once.
    """
    lines: list[str] = []
    seen: set[str] = set()
    for result in results:
        record = result.record.strip()
        if not record or result.verdict == Verdict.OK or record in seen:
            continue
        seen.add(record)
        name = f"{result.check_name} {result.subject}".strip()
        reason = " ".join(result.reason.split())
        lines.append(f"; {name}: {reason}" if reason else f"; {name}")
        lines.extend(line.rstrip() for line in record.splitlines() if line.strip())
    return "\n".join(lines) + "\n" if lines else ""


def with_worst(domains: QuerySet[Domain]) -> QuerySet[Domain]:
    """Domains annotated with health_worst: their latest done run's worst verdict, or None.

    One correlated subquery per row, through the (domain, state, -finished) index.
    """
    latest = (CheckRun.objects.filter(domain=OuterRef("pk"), state=CheckRun.State.DONE)
              .order_by("-finished").values("worst")[:1])
    return domains.annotate(
        health_worst=Subquery(latest, output_field=models.PositiveSmallIntegerField()))


@dataclass
class Health:
    """Everything the DNS health section of a domain shows."""

    domain: Domain
    run: CheckRun | None  # the latest done run
    results: list[CheckResult] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    has_previous: bool = False
    records: str = ""
    pending: CheckRun | None = None  # a run queued or running now
    failed: CheckRun | None = None  # the last run, when it failed after `run`
    dkim_stale: bool = False  # the DKIM key was set or removed since `run` checked it

    @property
    def silent_resolver(self) -> str:
        """The resolver that answered none of the latest run's lookups, or ''."""
        return self.run.silent_resolver if self.run else ""

    @property
    def shown_results(self) -> list[CheckResult]:
        """The results as rows; with a silent resolver, only those that needed no DNS
        (the page says once that the rest could not be looked at)."""
        if not self.silent_resolver:
            return self.results
        return [r for r in self.results if r.verdict != Verdict.UNKNOWN]

    @property
    def shown_changes(self) -> list[Change]:
        if not self.silent_resolver:
            return self.changes
        return [c for c in self.changes if c.kind != moves.UNCHECKED]

    @property
    def tally(self) -> list[tuple[str, int]]:
        """How many results have each verdict, worst first, leaving out zeros."""
        counts = {v: 0 for v in Verdict}
        for result in self.results:
            counts[Verdict(result.verdict)] += 1
        return [(v.label, counts[v]) for v in sorted(Verdict, reverse=True) if counts[v]]


def health(domain: Domain) -> Health:
    run = latest_run(domain)
    pending = open_run(domain)
    failed_runs = CheckRun.objects.filter(domain=domain, state=CheckRun.State.FAILED)
    if run is not None and run.finished is not None:
        failed_runs = failed_runs.filter(finished__gt=run.finished)
    failed = failed_runs.order_by("-finished", "-pk").first()
    if run is None:
        return Health(domain=domain, run=None, pending=pending, failed=failed)
    results = list(run.results.all())
    previous = previous_run(run)
    changes = changes_between(previous, run) if previous else []
    stale = dkim_stale(domain, run, results)
    # A stale DKIM result's record is for a key the panel no longer has.
    current = [r for r in results if not (stale and r.check_name == "dkim")]
    return Health(domain=domain, run=run, results=results, changes=changes,
                  has_previous=previous is not None, records=zone_records(current),
                  pending=pending, failed=failed, dkim_stale=stale)


def dkim_stale(domain: Domain, run: CheckRun, results: Iterable[CheckResult]) -> bool:
    """Whether `run` checked DKIM with other keys than the ones expected now.

    Setting, replacing or removing a key does not check again: until the
    next run the row must say so, not "no key is set" or show the record of
    a key that is gone.
    """
    checked = {r.subject for r in results if r.check_name == "dkim"}
    if not checked:
        return False
    keys = dkim_keys.expected_keys([domain.pk]).get(domain.pk, [])
    if not keys:
        return checked != {""}  # checked with a key that has been removed since
    # The keys are read when the run starts: one set after that is not in it.
    since = run.started or run.finished
    return checked != {k.selector for k in keys} or (
        since is not None and any(k.modified >= since for k in keys))


def undelivered_report_copies() -> list[ReportDelivery]:
    """The latest health report's copies the mail server has not taken yet (they
    are retried), for the superadmin's dashboard."""
    last = HealthReport.objects.order_by("-sent_at", "-pk").first()
    if last is None:
        return []
    return list(last.deliveries.exclude(state=ReportDelivery.State.SENT)
                .select_related("report").order_by("address"))
