"""dnscheck's item on a domain's checklist: the records to publish are published,
as the latest finished DNS check found them."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from dnscheck.models import CheckResult, CheckRun, Verdict
from domains.checklist import Item
from domains.models import Domain

# The checks that look at the domain's own zone records (not block lists or the
# provider's PTR): a warning is published but improvable; unknown or error is not.
ZONE_CHECKS = ("mx", "spf", "dkim", "dmarc")


def records_published(domain: Domain) -> Item:
    run = (CheckRun.objects.filter(domain=domain, state=CheckRun.State.DONE)
           .order_by("-finished", "-pk").only("pk", "finished", "silent_resolver").first())
    health = reverse("dnscheck:health", args=[domain.name])
    label = "DNS records published"
    if run is None:
        return Item(label, False, "no DNS check has run yet: publish the records below, "
                    "then check", health, "Check DNS now", order=10)
    if run.silent_resolver:
        # Every lookup went unanswered: the check saw nothing of the records, as the
        # DNS health section's banner says (it names the resolver).
        return Item(label, False, "not known: the DNS resolver did not answer the latest "
                    "check", health, "See the DNS health", order=10)
    problems = CheckResult.objects.filter(
        run=run, check_name__in=ZONE_CHECKS,
        verdict__in=[Verdict.UNKNOWN, Verdict.ERROR]).count()
    when = timezone.localtime(run.finished).strftime("%Y-%m-%d %H:%M") if run.finished else ""
    if problems:
        return Item(label, False, f"the check of {when} found {problems} missing or wrong",
                    health, "See the DNS health", order=10)
    return Item(label, True, f"as the check of {when} found them", order=10)
