from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from core.audit_text import describe
from core.http import is_mailbox_user
from core.models import AuditEntry
from dnscheck import selectors as dnscheck_selectors
from domains import selectors
from domains.models import Domain
from domains.reach import is_admin, visible_domains
from mailhost.models import MailHost


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Admins get the dashboard; mailbox users their own page."""
    if is_mailbox_user(request.user):
        return redirect("accounts:me")
    if not is_admin(request.user):
        raise Http404
    domains = visible_domains(request.user)
    if request.user.is_superuser:
        counts, recent = selectors.counts(), AuditEntry.objects.all()
    else:
        pairs = list(domains.values_list("pk", "name"))
        counts = selectors.counts([pk for pk, _ in pairs])
        # By id, not name: a deleted domain's history stays with the deleted domain.
        recent = AuditEntry.objects.filter(domain_ref__in=[pk for pk, _ in pairs])
    context = {
        # The first day's steps, until both are done: the mail host, the first domain.
        "setup": _setup_steps(domains) if request.user.is_superuser else None,
        # The health report the local mail server refused: it is retried, and says so here.
        "unsent_report": (dnscheck_selectors.undelivered_report_copies()
                          if request.user.is_superuser else []),
        "counts": counts,
        # dnscheck: each domain's latest worst verdict, in the same query.
        "domains": dnscheck_selectors.with_worst(selectors.with_usage(domains))[:20],
        # Events, not their rows: an import of 10,000 mailboxes is one line.
        "recent": [(entry, "; ".join(describe(entry.action, entry.before, entry.after,
                                              domain=entry.domain, actor=entry.actor,
                                              obj=entry.object_repr)))
                   for entry in recent.filter(parent__isnull=True).order_by("-at", "-id")[:15]],
    }
    return render(request, "home.html", context)


def _setup_steps(domains: QuerySet[Domain]) -> dict[str, bool] | None:
    """Where a superadmin stands on the first day; None once the host is set up and a
    domain exists (read fresh: the counts may be half a minute old)."""
    host_ready = MailHost.current().is_set_up
    has_domain = domains.exists()
    if host_ready and has_domain:
        return None
    return {"host_ready": host_ready, "has_domain": has_domain}
