from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from core.http import is_mailbox_user
from core.models import AuditEntry
from dnscheck import selectors as dnscheck_selectors
from domains import selectors
from domains.reach import is_admin, visible_domains


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
        "counts": counts,
        # dnscheck: each domain's latest worst verdict, in the same query.
        "domains": dnscheck_selectors.with_worst(selectors.with_usage(domains))[:20],
        "recent": recent.order_by("-at", "-id")[:15],
    }
    return render(request, "home.html", context)
