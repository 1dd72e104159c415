"""Every write of the dnscheck app: check runs and their results.

Check runs are history, not admin changes: a run asked for in the panel is
audited (who asked), the results themselves are the run's own record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from core import audit, jobs
from core.actor import BEAT, COMMAND, Actor
from core.resolver import Resolver
from dkim import selectors as dkim_keys
from dkim.models import DkimKey
from dnscheck import checks
from dnscheck.findings import DkimExpected, Finding, Identity, Target
from dnscheck.models import CheckResult, CheckRun, HealthReport, ReportDelivery, Verdict
from domains.models import Alias, Domain, Mailbox
from mailhost.models import MailHost

log = logging.getLogger(__name__)

REQUIRED_LOCAL_PARTS = ("postmaster", "abuse")


# ---------------------------------------------------------------- check runs


def request_check(*, actor: Actor, domain: Domain, countdown: float = 0) -> CheckRun:
    """Queue a check of `domain`, or return the run already queued or running.

    The task is enqueued after commit. A queued run is enqueued again: if its
    first message was lost or waits for a later slot, this one runs it now,
    and whichever comes second finds nothing to claim.
    """
    with transaction.atomic():
        locked = Domain.objects.select_for_update().get(pk=domain.pk)
        run = _open_run(locked)
        if run is None:
            run = CheckRun.objects.create(domain=locked, requested_by=str(actor)[:254])
            # The system's own runs are not audited.
            if actor not in {BEAT, COMMAND}:
                audit.record(actor=actor, action="dnscheck.request", obj=locked,
                             domain=locked, after={"run": run.pk})
        if run.state == CheckRun.State.QUEUED:
            jobs.enqueue_on_commit("dnscheck.run_check", run.pk, countdown=countdown,
                                   refused=lambda: _not_sent(run.pk))
    run.refresh_from_db()
    return run


def _not_sent(run_id: int) -> str:
    # Failed, not left queued: the domain's section shows why, and asking again starts anew.
    _fail(run_id, jobs.NOT_SENT)
    return "the DNS check was not started; try again in a minute"


def _open_run(domain: Domain) -> CheckRun | None:
    """The domain's queued or running run; a run cut off long ago is closed as failed."""
    run = (CheckRun.objects.filter(domain=domain, state__in=[CheckRun.State.QUEUED,
                                                             CheckRun.State.RUNNING])
           .order_by("-pk").first())
    if run is None:
        return None
    if run.is_stale():
        _fail(run.pk, CheckRun.lost_error)
        return None
    return run


def execute_run(run_id: int) -> CheckRun | None:
    """Claim queued run `run_id`, check its domain and store the results.

    Returns None when there is nothing to do (the run is done, or another
    worker has it), so a redelivered task is harmless.
    """
    # A stale run (its worker was killed) may be checked again from the start.
    if not jobs.claim(CheckRun, run_id, reclaim_stale=True):
        return None
    run = CheckRun.objects.select_related("domain").get(pk=run_id)
    try:
        target = targets_for([run.domain])[0]
        findings = checks.check_domain(target, Identity.of(MailHost.current()),
                                       Resolver.from_settings(),
                                       budget=settings.MAILADMIN_DNS_DOMAIN_BUDGET)
    except SoftTimeLimitExceeded:
        _fail(run_id, "the run took longer than its time limit")
        raise
    except Exception as error:
        log.exception("DNS check run %s failed", run_id)
        _fail(run_id, f"the checks failed: {type(error).__name__}")
        return CheckRun.objects.get(pk=run_id)
    return _store(run, findings)


def check_domains_now(*, actor: Actor, domains: Sequence[Domain]) -> list[CheckRun]:
    """Check `domains` in this process and store a run for each.

    A batch of MAILADMIN_DNS_CONCURRENCY domains at a time, each batch's runs
    started when it is: a run then lasts no longer than a domain's budget, so
    the stale rule of check runs (a worker's time limit) never closes one of
    them while this command still works on it.
    """
    size = max(1, settings.MAILADMIN_DNS_CONCURRENCY)
    runs: list[CheckRun] = []
    for start in range(0, len(domains), size):
        runs += _check_batch(actor, domains[start:start + size])
    return runs


def _check_batch(actor: Actor, domains: Sequence[Domain]) -> list[CheckRun]:
    now = timezone.now()
    runs = [CheckRun.objects.create(domain=d, requested_by=str(actor)[:254],
                                    state=CheckRun.State.RUNNING, started=now)
            for d in domains]
    try:
        results = checks.check_many(targets_for(domains), Identity.of(MailHost.current()),
                                    resolver=Resolver.from_settings(),
                                    concurrency=settings.MAILADMIN_DNS_CONCURRENCY,
                                    budget=settings.MAILADMIN_DNS_DOMAIN_BUDGET)
    except BaseException:
        # Interrupted (^C) or broken: close the runs, or the pages would
        # follow them until they go stale.
        for run in runs:
            _fail(run.pk, "the command stopped before the run finished")
        raise
    return [_store(run, results[run.domain.name]) for run in runs]


def _store(run: CheckRun, findings: Sequence[Finding]) -> CheckRun:
    finished = timezone.now()
    with transaction.atomic():
        CheckResult.objects.bulk_create(
            CheckResult(run=run, check_name=f.check, subject=f.subject[:255],
                        verdict=f.verdict, reason=f.reason[:500], observed=f.observed,
                        expected=f.expected, record=f.record, checked_at=finished)
            for f in findings)
        worst = max((f.verdict for f in findings), default=Verdict.UNKNOWN)
        silent = getattr(findings, "silent_resolver", "")[:255]
        if not jobs.finish(CheckRun, run.pk, worst=worst, finished=finished,
                           silent_resolver=silent):
            # Failed meanwhile (as stale): its results would contradict that.
            transaction.set_rollback(True)
    run.refresh_from_db()
    return run


def _fail(run_id: int, reason: str) -> None:
    jobs.fail(CheckRun, run_id, reason)


def _stalled_days(key: DkimKey, stalled: datetime, now: datetime) -> int:
    """Days a pending key has waited for its record (a revoked one for its revoked
    form), once that is past the stall limit."""
    since = key.revoked if key.state == DkimKey.State.REVOKED else key.created
    if key.state not in (DkimKey.State.PENDING, DkimKey.State.REVOKED) or since is None \
            or since >= stalled:
        return 0
    return max(1, (now - since).days)


def targets_for(domains: Sequence[Domain]) -> list[Target]:
    """What the database knows that the checks need, in a fixed number of queries."""
    names = [d.name for d in domains]
    keys = dkim_keys.expected_keys(d.pk for d in domains)
    now = timezone.now()
    stalled = dkim_keys.stalled_since(now)
    revoked = dkim_keys.stalled_revoked_keys((d.pk for d in domains), stalled)
    wanted = [f"{local}@{name}" for name in names for local in REQUIRED_LOCAL_PARTS]
    mailboxes = set(Mailbox.objects.filter(email__in=wanted, active=True)
                    .values_list("email", flat=True))
    aliases = set(Alias.objects.filter(source__in=wanted + [f"@{n}" for n in names],
                                       active=True).values_list("source", flat=True))
    targets = []
    for domain in domains:
        required = {}
        for local in REQUIRED_LOCAL_PARTS:
            address = f"{local}@{domain.name}"
            required[local] = ("mailbox" if address in mailboxes else
                               "alias" if address in aliases else
                               "catch-all" if f"@{domain.name}" in aliases else "")
        dkim = tuple(DkimExpected(k.selector, k.public_key, k.algorithm, k.state,
                                  stalled_days=_stalled_days(k, stalled, now))
                     for k in keys.get(domain.pk, []) + revoked.get(domain.pk, []))
        targets.append(Target(name=domain.name, dkim_keys=dkim, required=required))
    return targets


# ---------------------------------------------------------------- schedules


def spread_offset(domain_id: int, window_seconds: float) -> float:
    """A domain's fixed start offset within the window, scattered evenly by its id."""
    if window_seconds <= 0:
        return 0.0
    return (domain_id * 2654435761 % 2**32) / 2**32 * window_seconds


def schedule_all() -> int:
    """Queue a run for every active domain at its own offset; returns how many."""
    window = settings.MAILADMIN_DNSCHECK_SPREAD_MINUTES * 60
    count = 0
    for domain in Domain.objects.filter(active=True).order_by("pk").iterator():
        request_check(actor=BEAT, domain=domain, countdown=spread_offset(domain.pk, window))
        count += 1
    return count


def prune_history(now: datetime | None = None) -> int:
    """Delete runs older than the retention, keeping each domain's latest run."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.MAILADMIN_DNSCHECK_RETENTION_DAYS)
    latest = (CheckRun.objects.filter(state=CheckRun.State.DONE).values("domain")
              .annotate(last=Max("pk")).values_list("last", flat=True))
    keep = set(latest)
    old = list(CheckRun.objects.filter(requested__lt=cutoff).exclude(pk__in=keep)
               .exclude(state__in=[CheckRun.State.QUEUED, CheckRun.State.RUNNING])
               .values_list("pk", flat=True))
    deleted = 0
    for start in range(0, len(old), 1000):
        with transaction.atomic():
            batch = old[start:start + 1000]
            CheckResult.objects.filter(run__in=batch).delete()
            deleted += CheckRun.objects.filter(pk__in=batch).delete()[0]
    return deleted


# ---------------------------------------------------------------- the report


def record_report(*, sent_at: datetime, recipients: int, changes: int,
                  addresses: Sequence[str] = ()) -> HealthReport:
    """Remember the report as of `sent_at`, with a pending copy for each of `addresses`:
    the next one starts from here.

    Written before sending: each copy is then marked sent (record_delivery)
    the moment the mail server takes it, so a retry mails only the others.
    Copies of earlier reports still pending are replaced: this report covers,
    for each address, everything since the last report it received.
    `sent_at` is the moment the report compared at, so a run that finished
    while mail went out counts next time. A report recorded with no
    addresses counts as received by everyone.
    """
    with transaction.atomic():
        ReportDelivery.objects.filter(state=ReportDelivery.State.PENDING).update(
            state=ReportDelivery.State.REPLACED, taken=None)
        report = HealthReport.objects.create(sent_at=sent_at, recipients=recipients,
                                             changes=changes)
        ReportDelivery.objects.bulk_create(ReportDelivery(report=report, address=address)
                                           for address in addresses)
    return report


def take_delivery(*, delivery_id: int, now: datetime) -> bool:
    """Whether this sender may mail pending copy `delivery_id` now: of two at once
    only one takes it. A take older than two SMTP timeouts was a sender that
    died, and is taken again."""
    lapsed = now - timedelta(seconds=2 * settings.EMAIL_TIMEOUT + 60)
    return bool(ReportDelivery.objects.filter(
        Q(taken__isnull=True) | Q(taken__lt=lapsed), pk=delivery_id,
        state=ReportDelivery.State.PENDING).update(taken=now))


def record_delivery(*, delivery_id: int, error: str = "") -> None:
    """Copy `delivery_id` went (no `error`), or the mail server's refusal; either way
    it is free to be taken again."""
    with transaction.atomic():
        if error:
            ReportDelivery.objects.filter(pk=delivery_id).update(
                attempts=F("attempts") + 1, error=error[:500], taken=None)
            return
        if ReportDelivery.objects.filter(pk=delivery_id, state=ReportDelivery.State.PENDING
                                         ).update(state=ReportDelivery.State.SENT,
                                                  sent_at=timezone.now(), error="", taken=None,
                                                  attempts=F("attempts") + 1):
            report_id = ReportDelivery.objects.get(pk=delivery_id).report_id
            HealthReport.objects.filter(pk=report_id).update(recipients=F("recipients") + 1)
