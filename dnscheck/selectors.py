"""Reads of DNS health for the pages: latest results, what changed, what to publish."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from django.db import models
from django.db.models import OuterRef, Prefetch, Q, QuerySet, Subquery

from dnscheck import changes as moves
from dnscheck.models import CheckResult, CheckRun, DkimKey, Verdict
from domains.models import Domain

OPEN_STATES = (CheckRun.State.QUEUED, CheckRun.State.RUNNING)
# The page's words for the kinds of dnscheck.changes (also its CSS classes). A
# move to or from unknown is "unchecked": neither better nor worse.
WORSENED, IMPROVED, UNCHECKED, UNCHANGED = "worsened", "improved", "unchecked", "unchanged"
_DIRECTIONS = {moves.WORSE: WORSENED, moves.BETTER: IMPROVED, moves.UNCHECKED: UNCHECKED}


class Result(Protocol):
    """A stored CheckResult, or anything shaped like one (the report's snapshots)."""

    check_name: str
    subject: str
    verdict: int
    reason: str
    record: str


@dataclass(frozen=True)
class Change:
    """One result that differs between two runs, by (check_name, subject)."""

    check_name: str
    subject: str
    old: Verdict | None  # None: the result is new in this run
    new: Verdict | None  # None: the result is gone from this run
    reason: str  # the newer reason, or the older one for a result that is gone

    @property
    def kind(self) -> str:
        if self.old is None:
            return "new"
        if self.new is None:
            return "gone"
        return "changed"

    @property
    def change(self) -> str:
        """The kind of move, as dnscheck.changes (and so the report) names it."""
        return moves.change_kind(self.old, self.new) or UNCHANGED

    @property
    def direction(self) -> str:
        # A result that is new while ok, or gone, is neither better nor worse.
        return _DIRECTIONS.get(self.change, UNCHANGED)

    @property
    def worsened(self) -> bool:
        return self.direction == WORSENED

    @property
    def improved(self) -> bool:
        return self.direction == IMPROVED

    @property
    def old_label(self) -> str:
        return "" if self.old is None else self.old.label

    @property
    def new_label(self) -> str:
        return "" if self.new is None else self.new.label


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
    return (CheckRun.objects.filter(domain=domain, state__in=OPEN_STATES)
            .order_by("-pk").first())


def compare(before: Iterable[Result], after: Iterable[Result]) -> list[Change]:
    """What differs between two sets of results, as dnscheck.changes decides (as the report).

    Worse first, then better, then unknown then or now, then new, then gone;
    within a kind the worst verdict comes first, then check and subject.
    """
    old = {(r.check_name, r.subject): r for r in before}
    new = {(r.check_name, r.subject): r for r in after}
    changes = []
    for key, _kind in moves.compare({k: r.verdict for k, r in old.items()},
                                    {k: r.verdict for k, r in new.items()}):
        was, now = old.get(key), new.get(key)
        shown = now if now is not None else old[key]
        changes.append(Change(check_name=key[0], subject=key[1],
                              old=None if was is None else Verdict(was.verdict),
                              new=None if now is None else Verdict(now.verdict),
                              reason=shown.reason))

    def order(change: Change) -> tuple[int, int, str, str]:
        worst = max(change.old or Verdict.OK, change.new or Verdict.OK)
        return (moves.ORDER[change.change], -worst, change.check_name, change.subject)

    return sorted(changes, key=order)


def changes_since_previous(run: CheckRun) -> list[Change]:
    """What changed in `run` since the domain's previous done run (empty for the first)."""
    previous = previous_run(run)
    if previous is None:
        return []
    return compare(previous.results.all(), run.results.all())


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
    changes = compare(previous.results.all(), results) if previous else []
    stale = dkim_stale(domain, run, results)
    # A stale DKIM result's record is for a key the panel no longer has.
    current = [r for r in results if not (stale and r.check_name == "dkim")]
    return Health(domain=domain, run=run, results=results, changes=changes,
                  has_previous=previous is not None, records=zone_records(current),
                  pending=pending, failed=failed, dkim_stale=stale)


def dkim_stale(domain: Domain, run: CheckRun, results: Iterable[CheckResult]) -> bool:
    """Whether `run` checked DKIM with another key than the one set now.

    Setting, replacing or removing the key does not check again: until the
    next run the row must say so, not "no key is set" or show the record of
    a key that is gone.
    """
    checked = {r.subject for r in results if r.check_name == "dkim"}
    if not checked:
        return False
    key = DkimKey.objects.filter(domain=domain).only("selector", "modified").first()
    if key is None:
        return checked != {""}  # checked with a key that has been removed since
    # The key is read when the run starts: one set after that is not in it.
    since = run.started or run.finished
    return checked != {key.selector} or (since is not None and key.modified >= since)
