from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.models import AuditEntry
from accounts.permissions import is_admin, is_mailbox_user, visible_domains
from domains import selectors


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Admins get the dashboard; mailbox users their own page."""
    if is_mailbox_user(request.user):
        return redirect("accounts:me")
    if not is_admin(request.user):
        raise Http404
    domains = visible_domains(request.user)
    names = list(domains.values_list("name", flat=True)[:1000])
    recent = AuditEntry.objects.all() if request.user.is_superuser else (
        AuditEntry.objects.filter(domain__in=names))
    context = {
        "counts": selectors.counts(domains),
        "domains": selectors.with_usage(domains)[:20],
        "recent": recent.order_by("-at", "-id")[:15],
    }
    return render(request, "home.html", context)
