"""The audit log: each change as a readable line, an import as one event."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.forms import AuditFilterForm
from core.audit_text import action_choices, describe
from core.http import PAGE_SIZE, is_htmx, page_of
from core.models import AuditEntry
from domains.access import admin_required
from domains.reach import visible_domains

# Rows of an event shown folded under it; the rest are on the event's own pages.
EVENT_ROWS_SHOWN = 20
# The actions whose rows may have rows of their own (core.audit's `parent`).
EVENT_ACTIONS = frozenset({"domain.import", "domain.delete"})


@dataclass
class Line:
    """An audit row as the page shows it."""

    entry: AuditEntry
    change: list[str]
    rows: list[Line] = field(default_factory=list)


@admin_required
def audit_log(request: HttpRequest) -> HttpResponse:
    """Superadmins see every entry; domain admins the entries of their domains.

    The rows of an event (an import's one row per mailbox, a domain's
    deletion's one row per mailbox, alias and alias domain) are folded under
    it: the page lists events and single rows, and `?batch=<id>` lists the
    rows of event <id>, both under the same filters and the same reach.
    """
    form = AuditFilterForm(request.GET or None)
    scoped = AuditEntry.objects.all()
    if not request.user.is_superuser:
        # By the domain's id: an earlier domain of the same name is someone else's history.
        scoped = scoped.filter(
            domain_ref__in=list(visible_domains(request.user).values_list("pk", flat=True)))
    event = _event(scoped, request.GET.get("batch", ""))
    entries = scoped.filter(parent=event.pk) if event else scoped.filter(parent__isnull=True)
    if form.is_valid():
        entries = _filtered(entries, form.cleaned_data)
    elif form.is_bound:
        # The form says what is wrong; a list that ignored the filter would
        # read as its answer.
        entries = entries.none()
    page = page_of(request)
    params = request.GET.copy()
    params.pop("page", None)
    found = list(entries.order_by("-at", "-id")[(page - 1) * PAGE_SIZE: page * PAGE_SIZE + 1])
    lines = [_line(e) for e in found[:PAGE_SIZE]]
    for line in lines:
        if line.entry.action in EVENT_ACTIONS:
            # One bounded read per import on the page (the (parent, at, id)
            # index): folding every row of a 200,000-row import is not a page.
            line.rows = [_line(e) for e in scoped.filter(parent=line.entry.pk)
                         .order_by("at", "id")[:EVENT_ROWS_SHOWN]]
    context = {"lines": lines, "page": page, "has_next": len(found) > PAGE_SIZE,
               "form": form, "query": params.urlencode(), "event": _line(event) if event else None,
               "event_rows_shown": EVENT_ROWS_SHOWN,
               "actions": action_choices(superadmin=request.user.is_superuser)}
    template = "accounts/_audit_rows.html" if is_htmx(request) else "accounts/audit_log.html"
    return render(request, template, context)


def _event(scoped: QuerySet[AuditEntry], batch: str) -> AuditEntry | None:
    """The event `?batch=` names, if it is one within reach; else None (all events).

    Out of reach or not a number reads as no such event: whether a row exists
    outside the admin's domains is not theirs to learn.
    """
    if not batch.isascii() or not batch.isdigit() or len(batch) > 18:
        return None
    return scoped.filter(pk=int(batch), parent__isnull=True).first()


def _filtered(entries: QuerySet[AuditEntry], data: dict[str, object]) -> QuerySet[AuditEntry]:
    if actor := str(data["actor"] or "").strip().lower():
        entries = entries.filter(actor=actor)
    if domain := str(data["domain"] or "").strip().lower():
        entries = entries.filter(domain=domain)
    # A prefix, as typed or ending in * (mailbox.* and mailbox. alike);
    # startswith escapes the _ of maildir_kept and any % for LIKE.
    if action := str(data["action"] or "").strip().lower().rstrip("*"):
        entries = entries.filter(action__startswith=action)
    since, until = data["since"], data["until"]
    if isinstance(since, datetime.date) and (start := _day_start(since)):
        entries = entries.filter(at__gte=start)
    if isinstance(until, datetime.date) and (end := _day_start(until, days_later=1)):
        entries = entries.filter(at__lt=end)
    return entries


def _line(entry: AuditEntry) -> Line:
    return Line(entry=entry, change=describe(entry.action, entry.before, entry.after,
                                             domain=entry.domain, actor=entry.actor,
                                             obj=entry.object_repr))


def _day_start(day: datetime.date, *, days_later: int = 0) -> datetime.datetime | None:
    """Midnight `days_later` days after `day` begins, in the panel's zone.

    None when that instant, or its UTC form the database compares, falls past
    either end of the calendar (0001-01-01 east of UTC, the day after
    9999-12-31): such a bound excludes nothing, so it is dropped, not a 500.
    """
    try:
        start = timezone.make_aware(datetime.datetime.combine(
            day + datetime.timedelta(days=days_later), datetime.time()))
        start.astimezone(datetime.UTC)
    except OverflowError:
        return None
    return start
