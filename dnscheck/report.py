"""The daily DNS health report: what changed since the last one, to each admin.

Superadmins get every active domain, domain admins their own; mailbox users
nothing. Each recipient gets one e-mail (plain text and HTML) listing, first,
the results that changed since the previous report, by kind as
dnscheck.changes classifies them (worse, better, could not check, now
checked, new, no longer checked), then a summary of all their domains.

"Since the previous report" compares, per domain, the latest finished run as
of the previous report's `sent_at` with the latest finished run as of now,
result by result (check name and subject). The first report ever has nothing
to compare with, so it lists the current problems.
"""

from __future__ import annotations

import logging
import smtplib
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import BigIntegerField, OuterRef, Q, Subquery, Value
from django.template.loader import render_to_string
from django.utils import timezone

from core.actor import MAILBOX_ACCOUNT_PREFIX
from dnscheck import changes as moves
from dnscheck import selectors, services
from dnscheck.changes import Change
from dnscheck.models import CheckResult, CheckRun, HealthReport, ReportDelivery, Verdict
from domains import quota
from domains.models import Domain, DomainAdmin, Mailbox
from mailhost.models import MailHost

log = logging.getLogger(__name__)

# A report sent less than this long ago is not sent again (unless forced):
# the daily task may be delivered twice, and must not mail twice.
MIN_INTERVAL = timedelta(hours=20)
# The reports looked back through for the last one an address received.
SINCE_REPORTS = 60
# Ids per `IN (...)`: far below every backend's limit on query parameters.
CHUNK = 500
# Changed domains named in the subject line.
SUBJECT_DOMAINS = 3
# Mailboxes at 90 % of their quota or more: read at most this many (fullest
# first) and list at most FULL_LISTED in one report, with a count of the rest.
FULL_READ = 5000
FULL_LISTED = 50


@dataclass(frozen=True)
class FullMailbox:
    email: str
    domain_id: int
    used: quota.Used


@dataclass
class DomainSummary:
    name: str
    checked: datetime | None = None  # when its latest run finished; None: never checked
    worst: Verdict | None = None
    ok: int = 0
    unknown: int = 0
    warning: int = 0
    error: int = 0
    changes: list[Change] = field(default_factory=list)

    @property
    def worst_label(self) -> str:
        return Verdict(self.worst).label if self.worst is not None else "not checked"

    @property
    def worst_colour(self) -> str:
        return moves.colour(self.worst)


@dataclass
class Recipient:
    address: str
    everything: bool = False  # a superadmin: every domain
    domain_ids: set[int] = field(default_factory=set)


# Result rows as fetched: (check_name, subject) -> (verdict, reason, record, position).
Results = dict[moves.Key, moves.Seen]


def send_reports(now: datetime | None = None, *, force: bool = False) -> int:
    """Mail the health report to every admin whose domains changed; returns how many went.

    Within MIN_INTERVAL of the previous report (unless `force`) nothing new is
    made, but that report's copies the mail server did not take are tried
    again, with the same content. With `force` or
    MAILADMIN_REPORT_WHEN_UNCHANGED every admin with a domain gets one,
    changes or not. A new report replaces the earlier copies still not sent:
    for each address it covers everything since the last report it received.
    """
    now = now or timezone.now()
    last = HealthReport.objects.order_by("-sent_at", "-pk").first()
    if last is not None and not force and now - last.sent_at < MIN_INTERVAL:
        pending = list(last.deliveries.filter(state=ReportDelivery.State.PENDING))
        if pending:
            return _retry(last, pending, now)
        log.info("health report: the last one went at %s; not sending again", last.sent_at)
        return 0
    messages, changes = _messages(now, before=None, only=None,
                                  send_unchanged=force or settings.MAILADMIN_REPORT_WHEN_UNCHANGED)
    if not messages:
        log.info("health report: nothing changed; no report sent")
        return 0
    recorded = services.record_report(sent_at=now, recipients=0, changes=changes,
                                      addresses=list(messages))
    return _send(recorded, list(recorded.deliveries.all()), messages, now)


def pending() -> bool:
    """Whether a copy of the latest report still waits to be sent."""
    return ReportDelivery.objects.filter(state=ReportDelivery.State.PENDING).exists()


def _retry(report: HealthReport, pending: list[ReportDelivery], now: datetime) -> int:
    addresses = {d.address.lower() for d in pending}
    messages, _ = _messages(report.sent_at, before=report, only=addresses, send_unchanged=True)
    return _send(report, pending, messages, now)


def _send(report: HealthReport, deliveries: Sequence[ReportDelivery],
          messages: Mapping[str, mail.EmailMultiAlternatives], now: datetime) -> int:
    """Send each delivery's message once: taken just before it goes, so a second
    sender at the same time skips it; recorded as sent, or with the mail server's
    refusal, before the next one is taken. A sender cut off half-way (its time
    limit, a killed worker, the database gone) leaves each copy that went
    recorded, and the ones not reached free: a retry mails only those."""
    started = time.monotonic()
    failed = []
    went = 0
    with Outbox() as outbox:
        for delivery in deliveries:
            message = messages.get(delivery.address)
            # The take's time moves on with the list: one taken late in a long list
            # must not look lapsed to another sender the moment it is taken.
            taken_at = now + timedelta(seconds=time.monotonic() - started)
            if message is None or not services.take_delivery(delivery_id=delivery.pk,
                                                             now=taken_at):
                continue
            error = outbox.send(message)
            services.record_delivery(delivery_id=delivery.pk, error=error)
            if error:
                failed.append(delivery.address)
            else:
                went += 1
    if failed:
        log.error("health report of %s: not delivered to %s; it is tried again",
                  report.sent_at, ", ".join(failed))
    return went


def _messages(now: datetime, *, before: HealthReport | None, only: set[str] | None,
              send_unchanged: bool) -> tuple[dict[str, mail.EmailMultiAlternatives], int]:
    """The report as of `now` for each recipient (or those in `only`, lower-cased),
    by address, and the number of changes since the latest report before it.

    Each recipient's changes run from the last report before `before` (every
    report when None) that did not miss them.
    """
    people = [r for r in recipients() if only is None or r.address.lower() in only]
    since = _since_for([r.address for r in people], before)
    by_since: dict[datetime | None, dict[int, DomainSummary]] = {}
    for moment in sorted(set(since.values()), key=lambda m: (m is not None, m)):
        by_since[moment] = domain_summaries(now, moment)
    sender = report_sender()
    full = full_mailboxes()
    messages = {}
    for recipient in people:
        moment = since[recipient.address]
        summaries = by_since[moment]
        mine = (list(summaries.values()) if recipient.everything else
                [summaries[pk] for pk in sorted(recipient.domain_ids) if pk in summaries])
        if not mine:
            continue
        changes = sorted((c for s in mine for c in s.changes),
                         key=lambda c: (moves.ORDER[c.kind], c.domain, c.position))
        # A full mailbox is news every day until someone acts on it.
        my_full = [f for f in full if recipient.everything or f.domain_id in recipient.domain_ids]
        if changes or my_full or send_unchanged:
            messages[recipient.address] = build_message(
                recipient.address, mine, changes, moment, now, sender=sender, full=my_full)
    latest = max(by_since, key=lambda m: (m is not None, m), default=None)
    return messages, sum(len(s.changes) for s in by_since.get(latest, {}).values())


def _since_for(addresses: Sequence[str],
               before: HealthReport | None) -> dict[str, datetime | None]:
    """Per address, when the last report it received (of those before `before`) was
    made; a report that did not reach it does not count. None: no report yet."""
    reports = HealthReport.objects.order_by("-sent_at", "-pk")
    if before is not None:
        reports = reports.filter(Q(sent_at__lt=before.sent_at)
                                 | Q(sent_at=before.sent_at, pk__lt=before.pk))
    recent = list(reports.values_list("pk", "sent_at")[:SINCE_REPORTS])
    missed = {(pk, address.lower()) for pk, address in ReportDelivery.objects.filter(
        report_id__in=[pk for pk, _ in recent]).exclude(state=ReportDelivery.State.SENT)
        .values_list("report_id", "address")}
    since: dict[str, datetime | None] = {}
    for address in addresses:
        received = (at for pk, at in recent if (pk, address.lower()) not in missed)
        since[address] = next(received, recent[-1][1] if recent else None)
    return since


# ---------------------------------------------------------------- what changed


def domain_summaries(now: datetime, since: datetime | None) -> dict[int, DomainSummary]:
    """Every active domain's state as of `now` and its changes since `since`, by domain id.

    A fixed number of queries whatever the number of domains: one for the
    domains with their two runs, then the runs and results in chunks.
    """
    domains = Domain.objects.filter(active=True).order_by("name").annotate(
        current_run=_latest_run(now),
        previous_run=_latest_run(since) if since is not None else _no_run())
    rows = list(domains.values_list("pk", "name", "current_run", "previous_run"))
    current_ids = [r[2] for r in rows if r[2] is not None]
    run_ids = set(current_ids) | {r[3] for r in rows if r[3] is not None}
    runs: dict[int, tuple[datetime | None, int | None]] = {}
    for chunk in _chunks(current_ids):
        runs.update((pk, (finished, worst)) for pk, finished, worst in
                    CheckRun.objects.filter(pk__in=chunk).values_list("pk", "finished", "worst"))
    results: dict[int, Results] = defaultdict(dict)
    for chunk in _chunks(sorted(run_ids)):
        fetched = (CheckResult.objects.filter(run_id__in=chunk).order_by("run_id", "pk")
                   .values_list("run_id", "check_name", "subject", "verdict", "reason", "record"))
        for run_id, check_name, subject, verdict, reason, record in fetched:
            found = results[run_id]
            found[(check_name, subject)] = moves.Seen(verdict, reason, record, len(found))

    # What an unknown in the previous run hid: a result known again is judged against it.
    wanted = {previous_id: moves.unknown_then_known(results.get(previous_id, {}),
                                                    results.get(current_id, {}))
              for _pk, _name, current_id, previous_id in rows
              if current_id is not None and previous_id is not None and current_id != previous_id}
    known = selectors.last_known_verdicts(wanted) if any(wanted.values()) else {}

    summaries = {}
    for pk, name, current_id, previous_id in rows:
        summary = DomainSummary(name=name)
        summaries[pk] = summary
        if current_id is None:
            continue
        finished, worst = runs[current_id]
        summary.checked, summary.worst = finished, _verdict(worst)
        current = results.get(current_id, {})
        for seen in current.values():
            label = Verdict(seen.verdict).label
            setattr(summary, label, getattr(summary, label) + 1)
        if current_id != previous_id:
            previous = results.get(previous_id, {}) if previous_id is not None else None
            last_known = known.get(previous_id, {}) if previous_id is not None else {}
            summary.changes = compare(name, previous, current, last_known)
    return summaries


def compare(domain: str, previous: Mapping[moves.Key, tuple[int, str, str, int]] | None,
            current: Mapping[moves.Key, tuple[int, str, str, int]],
            last_known: Mapping[moves.Key, int] | None = None) -> list[Change]:
    """How `current` differs from `previous`; `previous` None: no run to compare with.

    The kinds are dnscheck.changes' (the domain page's too). With nothing to
    compare with (the first report, a domain first checked since the last
    one), the results that are not ok are the changes: new ok ones are left out.
    """
    changes = moves.between({k: moves.Seen(*row) for k, row in (previous or {}).items()},
                            {k: moves.Seen(*row) for k, row in current.items()},
                            last_known=last_known, domain=domain)
    return [c for c in changes if not (c.kind == moves.NEW and previous is None)]


def _latest_run(at: datetime) -> Subquery:
    return Subquery(CheckRun.objects.filter(domain=OuterRef("pk"), state=CheckRun.State.DONE,
                                            finished__lte=at)
                    .order_by("-finished", "-pk").values("pk")[:1])


def _no_run() -> Value:
    return Value(None, output_field=BigIntegerField())


def _verdict(value: int | None) -> Verdict | None:
    return Verdict(value) if value is not None else None


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    iterator = iter(ids)
    while chunk := list(islice(iterator, CHUNK)):
        yield chunk


def full_mailboxes() -> list[FullMailbox]:
    """Mailboxes of active domains at quota.NEAR_PERCENT of their limit or more,
    the fullest first (at most FULL_READ)."""
    rows = (quota.near_limit(Mailbox.objects.filter(domain__active=True))
            .values_list("email", "domain_id", "quota", "usage__bytes")[:FULL_READ])
    return [FullMailbox(email, domain_id, quota.Used(bytes=used or 0, limit=limit))
            for email, domain_id, limit, used in rows]


# ---------------------------------------------------------------- who gets it


def recipients() -> list[Recipient]:
    """Active superadmins (every domain) and domain admins (theirs), one per address.

    An admin's address is the account's e-mail, or its user name when that is
    an address (as the panel's accounts often are). An admin with
    neither gets no report. Two accounts with one address get one e-mail.
    """
    by_address: dict[str, Recipient] = {}

    def recipient(username: str, email: str) -> Recipient | None:
        address = _address(username, email)
        if address is None:
            log.warning("health report: admin %s has no e-mail address", username)
            return None
        return by_address.setdefault(address.lower(), Recipient(address=address))

    superadmins = (User.objects.filter(is_superuser=True, is_active=True)
                   .exclude(username__startswith=MAILBOX_ACCOUNT_PREFIX)
                   .values_list("username", "email"))
    for username, email in superadmins:
        if (found := recipient(username, email)) is not None:
            found.everything = True
    grants = (DomainAdmin.objects.filter(user__is_active=True, user__is_superuser=False,
                                         domain__active=True)
              .exclude(user__username__startswith=MAILBOX_ACCOUNT_PREFIX)
              .values_list("user__username", "user__email", "domain_id"))
    for username, email, domain_id in grants:
        if (found := recipient(username, email)) is not None:
            found.domain_ids.add(domain_id)
    return [by_address[key] for key in sorted(by_address)]


def _address(username: str, email: str) -> str | None:
    for candidate in (email.strip(), username.strip()):
        try:
            validate_email(candidate)
        except ValidationError:
            continue
        return candidate
    return None


# ---------------------------------------------------------------- the e-mail


def report_sender() -> str:
    """MAILADMIN_REPORT_FROM, else mailadmin@ the mail host's name (its row, as renamed)."""
    return settings.MAILADMIN_REPORT_FROM or f"mailadmin@{MailHost.current().mail_hostname}"


def build_message(address: str, summaries: Sequence[DomainSummary], changes: Sequence[Change],
                  since: datetime | None, now: datetime, *, sender: str,
                  full: Sequence[FullMailbox] = ()) -> mail.EmailMultiAlternatives:
    by_kind: dict[str, list[Change]] = {kind: [] for kind in moves.ORDER}
    for change in changes:
        by_kind[change.kind].append(change)
    worse = _names(c.domain for c in by_kind[moves.WORSE])
    better = _names(c.domain for c in by_kind[moves.BETTER])
    changed = _names([*worse, *better, *(c.domain for c in changes)])
    ordered = sorted(summaries, key=lambda s: (-(s.worst if s.worst is not None else -1), s.name))
    context: dict[str, Any] = {
        "since": since, "now": now, "first": since is None,
        "worse_domains": worse, "better_domains": better, "changed_domains": changed,
        "named": changed[:SUBJECT_DOMAINS], "more": len(changed) > SUBJECT_DOMAINS,
        "sections": [(title, by_kind[kind]) for kind, title in moves.TITLES.items()
                     if by_kind[kind]],
        "summaries": ordered, "name_width": max(len(s.name) for s in summaries),
        "full": full[:FULL_LISTED], "full_more": max(0, len(full) - FULL_LISTED),
        "full_count": len(full),
        "near_percent": quota.NEAR_PERCENT,
    }
    # One line whatever the template does: a header holds no line breaks.
    subject = " ".join(render_to_string("dnscheck/email/subject.txt", context).split())
    text = render_to_string("dnscheck/email/report.txt", context)
    html = render_to_string("dnscheck/email/report.html", context)
    message = mail.EmailMultiAlternatives(subject=subject, body=text, from_email=sender,
                                          to=[address])
    message.attach_alternative(html, "text/html")
    return message


def _names(domains: Iterable[str]) -> list[str]:
    """Distinct, in the order first seen."""
    return list(dict.fromkeys(domains))


# ---------------------------------------------------------------- sending


class Outbox:
    """One SMTP connection for a report's copies; `send` says per message "" when the
    mail server took it, else why not (its refusal, or that it could not be reached).

    A refused recipient does not stop the others. A mail server that cannot be
    reached is logged once, in one line rather than a traceback, and each
    message then gets that reason without another try. Nothing is raised: the
    caller records each outcome, and only what was not taken is tried again.
    """

    def __init__(self) -> None:
        self.connection: Any = None
        self.unreachable = ""

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *_: object) -> None:
        if self.connection is not None:
            _close(self.connection)

    def send(self, message: mail.EmailMultiAlternatives) -> str:
        if self.unreachable:
            return self.unreachable
        if self.connection is None:
            self.connection = mail.get_connection()
            try:
                self.connection.open()
            except (OSError, smtplib.SMTPException) as error:
                log.error("health report: cannot reach the mail server %s:%s: %s",
                          settings.EMAIL_HOST, settings.EMAIL_PORT, error)
                self.connection = None
                self.unreachable = (f"cannot reach the mail server {settings.EMAIL_HOST}:"
                                    f"{settings.EMAIL_PORT}: {error}")
                return self.unreachable
        try:
            went = self.connection.send_messages([message])
        except (OSError, smtplib.SMTPException) as error:
            log.warning("health report to %s failed: %s", ", ".join(message.to), error)
            # The session may be broken: the next message opens a fresh one.
            _close(self.connection)
            return _refusal(error)
        return "" if went else "the mail server did not take it"


def _refusal(error: OSError | smtplib.SMTPException) -> str:
    """The mail server's answer as one line: "451 4.3.0 <a@b>: try again later"."""
    answers: list[tuple[int, bytes | str]]
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        answers = [(code, text) for code, text in error.recipients.values()]
    elif isinstance(error, smtplib.SMTPResponseException):
        answers = [(error.smtp_code, error.smtp_error)]
    else:
        return str(error) or type(error).__name__
    return "; ".join(f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
                     for code, text in answers)


def _close(connection: Any) -> None:
    try:
        connection.close()
    except (OSError, smtplib.SMTPException):
        log.debug("health report: closing the SMTP connection failed", exc_info=True)
