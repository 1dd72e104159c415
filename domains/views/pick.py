"""The "New mailbox" and "New alias" buttons of the cross-domain lists: pick one of
the domains in reach, then that domain's form.

Bounded however many domains an account reaches: the picker lists at most
PICK_MAX names, and past that a search narrows them by the start of the name.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from domains import search
from domains.access import admin_required, domain_or_404
from domains.reach import visible_domains

PICK_MAX = 50

# kind -> (the page's title, the create page's url name)
_KINDS = {"mailbox": ("New mailbox", "domains:mailbox-create"),
          "alias": ("New alias", "domains:alias-create")}


def _pick(request: HttpRequest, kind: str) -> HttpResponse:
    title, create = _KINDS[kind]
    chosen = request.GET.get("domain", "")[:253]
    if chosen:
        # Outside the account's reach: the same 404 as the create page's own.
        return redirect(create, name=domain_or_404(request, chosen).name)
    query = search.domain_term(request.GET.get("q", "")[:253])
    domains = visible_domains(request.user)
    if query:
        domains = domains.filter(name__prefix=query)
    names = list(domains.order_by("name").values_list("name", flat=True)[:PICK_MAX + 1])
    if len(names) == 1 and not query:
        # One domain in reach: nothing to pick.
        return redirect(create, name=names[0])
    return render(request, "domains/pick_domain.html", {
        "title": title, "kind": kind, "names": names[:PICK_MAX],
        "more": len(names) > PICK_MAX, "q": query, "searchable": len(names) > PICK_MAX or query})


@admin_required
def mailbox_new(request: HttpRequest) -> HttpResponse:
    return _pick(request, "mailbox")


@admin_required
def alias_new(request: HttpRequest) -> HttpResponse:
    return _pick(request, "alias")
