"""`manage.py dnscheck [DOMAIN ...] [--json]`: check now, store, exit 1 on any error."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.commands import actor, one_line
from dnscheck import services
from dnscheck.models import CheckRun, Verdict
from domains import selectors
from domains.models import Domain

MARKS = {Verdict.OK: "ok", Verdict.UNKNOWN: "??", Verdict.WARNING: "!!", Verdict.ERROR: "XX"}


class Command(BaseCommand):
    help = ("Check the DNS of the given domains (all active domains when none are given), "
            "store the results, and exit with status 1 if any check is an error.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("domains", nargs="*", metavar="DOMAIN")
        parser.add_argument("--json", action="store_true", help="print the results as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["domains"]:
                # Distinct after normalising: "Example.org." is example.org.
                found = [selectors.domain_by_name(n) for n in options["domains"]]
                domains = list({d.pk: d for d in found}.values())
            else:
                domains = list(Domain.objects.filter(active=True).order_by("name"))
        except ValidationError as error:
            raise CommandError(one_line(error)) from None
        if not domains:
            raise CommandError("there are no active domains to check")
        runs = services.check_domains_now(actor=actor(), domains=domains)
        if options["json"]:
            self.stdout.write(json.dumps([_as_json(run) for run in runs], indent=2))
        else:
            for run in runs:
                self._print(run)
        errors = sum(1 for run in runs for r in run.results.all() if r.verdict == Verdict.ERROR)
        if errors:
            failing = sorted({run.domain.name for run in runs if run.worst == Verdict.ERROR})
            raise CommandError(f"{errors} check(s) failed in {', '.join(failing)}")

    def _print(self, run: CheckRun) -> None:
        worst = Verdict(run.worst).label if run.worst is not None else run.state
        self.stdout.write(f"{run.domain.name}: {worst}")
        for result in run.results.all():
            subject = f" {result.subject}" if result.subject else ""
            self.stdout.write(f"  {MARKS[Verdict(result.verdict)]} {result.check_name}"
                              f"{subject}: {result.reason}")
            if result.record and result.verdict != Verdict.OK:
                for line in result.record.splitlines():
                    self.stdout.write(f"       publish: {line}")


def _as_json(run: CheckRun) -> dict[str, Any]:
    return {
        "domain": run.domain.name,
        "run": run.pk,
        "worst": Verdict(run.worst).label if run.worst is not None else None,
        "finished": run.finished.isoformat() if run.finished else None,
        "results": [{"check": r.check_name, "subject": r.subject,
                     "verdict": Verdict(r.verdict).label, "reason": r.reason,
                     "observed": r.observed, "expected": r.expected, "record": r.record}
                    for r in run.results.all()],
    }
