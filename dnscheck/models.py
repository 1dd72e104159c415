"""DNS health: check runs and their results. The expected DKIM keys are the dkim app's."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone

from core.jobs import Job
from domains.models import Domain


class Verdict(models.IntegerChoices):
    # Ordered by how bad: a domain's worst verdict is the maximum of its results.
    OK = 0, "ok"
    UNKNOWN = 1, "unknown"
    WARNING = 2, "warning"
    ERROR = 3, "error"


class CheckRun(Job):
    """One check of a domain: a job (core.jobs) whose results are its history."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="check_runs")
    # Who asked, as an actor's label: a panel account, `cli:<login>` or `beat`.
    requested_by = models.CharField(max_length=254, default="")
    # When it was asked for; the column was there before the job lifecycle.
    requested = models.DateTimeField(auto_now_add=True)
    created = None  # type: ignore[assignment]  # Django removes the inherited field
    worst = models.PositiveSmallIntegerField(choices=Verdict.choices, null=True, blank=True)
    error = models.CharField(max_length=255, blank=True, default="")
    # The resolver(s) asked, when not one lookup of the run was answered: the
    # page then names them once instead of a timeout line per check.
    silent_resolver = models.CharField(max_length=255, blank=True, default="")

    # The hard time limit of dnscheck.run_check: a domain's checks stop asking
    # DNS after MAILADMIN_DNS_DOMAIN_BUDGET (30 s by default), and the limit
    # leaves room for storing and cuts off anything stuck.
    time_limit: ClassVar[int] = 150
    task_names = ("dnscheck.run_check",)
    lost_error = "the worker stopped before the run finished"

    class Meta:
        db_table = "dnscheck_runs"
        indexes = [
            models.Index(fields=["domain", "state", "-finished"], name="dnscheck_run_latest"),
            models.Index(fields=["finished"], name="dnscheck_run_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.domain.name} run {self.pk} ({self.state})"

class CheckResult(models.Model):
    run = models.ForeignKey(CheckRun, on_delete=models.CASCADE, related_name="results")
    # Which check ("mx", "spf", ...) and what it looked at (an address, a
    # block list): together they identify a result from one run to the next.
    check_name = models.CharField(max_length=32)
    subject = models.CharField(max_length=255, blank=True, default="")
    verdict = models.PositiveSmallIntegerField(choices=Verdict.choices)
    reason = models.CharField(max_length=500)
    observed = models.TextField(blank=True, default="")
    expected = models.TextField(blank=True, default="")
    # The zone-file line(s) that fix it, when the fix is a DNS record.
    record = models.TextField(blank=True, default="")
    checked_at = models.DateTimeField()

    class Meta:
        db_table = "dnscheck_results"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.check_name} {self.subject}: {self.get_verdict_display()}"

    @property
    def key(self) -> tuple[str, str]:
        return (self.check_name, self.subject)


class HealthReport(models.Model):
    """One sending of the daily report: the next one reports changes since it."""

    sent_at = models.DateTimeField(default=timezone.now)
    recipients = models.PositiveIntegerField(default=0)
    changes = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "dnscheck_reports"
        get_latest_by = "sent_at"

    def __str__(self) -> str:
        return f"report {self.sent_at:%Y-%m-%d %H:%M}"


class ReportDelivery(models.Model):
    """One recipient's copy of a report: retried until it goes, and sent once.

    Pending until the mail server takes it (`sent_at`); retried with its
    report's content while that report is the latest; once a newer report is
    made it is `replaced`: the newer one covers, for this address, everything
    since the last report it did receive.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        REPLACED = "replaced", "Replaced by a later report"

    report = models.ForeignKey(HealthReport, on_delete=models.CASCADE, related_name="deliveries")
    address = models.CharField(max_length=254)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # The mail server's last refusal (or why it could not be reached).
    error = models.CharField(max_length=500, blank=True, default="")
    # When a sender took it: of two senders at once only one mails it.
    taken = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "dnscheck_report_deliveries"
        constraints = [models.UniqueConstraint(fields=["report", "address"],
                                               name="dnscheck_delivery_once")]
        indexes = [models.Index(fields=["address", "state"], name="dnscheck_delivery_address")]

    def __str__(self) -> str:
        return f"{self.report} to {self.address} ({self.state})"
