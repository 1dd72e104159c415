"""Writes of a mailbox's auto-reply and forwarding: validate, one transaction,
one audit row, and the Sieve script Dovecot reads replaced by a new row."""

from __future__ import annotations

import datetime
import re
from collections.abc import Collection, Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from core import audit
from core.actor import Actor
from domains.models import Alias, AliasDomain, Domain, Mailbox
from domains.validators import normalize_address
from vacation import sieve
from vacation.models import SCRIPT_NAME, MailRules, SieveScript

SUBJECT_MAX = 200
TEXT_MAX = 4000
# Pigeonhole's own bounds are 1 day (sieve_vacation_min_period) and 60 days.
DAYS_MIN, DAYS_MAX = 1, 30
# Pigeonhole follows at most sieve_max_redirects (4 by default) per message.
FORWARD_MAX = 4
# Addresses the reply answers for beyond the mailbox's own (:addresses).
ALIASES_MAX = 50
# Mailbox rows locked, and scripts rewritten, a query when addresses change (an
# import may list thousands; an alias domain concerns a whole domain).
_LOCK_BATCH = 1000
# More replies of one domain than this in one refresh: the aliases listing the
# domain are read in one scan, not one substring scan of the table per mailbox.
_SCAN_PER_MAILBOX_MAX = 8
# Any control character but tab and newline; in the subject, none at all.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SUBJECT_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")


def rules_of(mailbox: Mailbox) -> MailRules:
    """The mailbox's rules, or unsaved defaults."""
    return MailRules.objects.filter(mailbox=mailbox).first() or MailRules(mailbox=mailbox)


def reply_addresses(mailbox: Mailbox) -> list[str]:
    """The other addresses that deliver to the mailbox, for vacation :addresses:
    the aliases listing it and its address in the domain's alias domains.

    Bounded (ALIASES_MAX). Pigeonhole cannot find them itself: over LMTP it
    knows only the mailbox (Postfix sends no ORCPT to Dovecot's LMTP, which
    announces no DSN), and a message to an address it does not know as the
    user's gets no reply. So the script lists them, and an alias or alias
    domain change rewrites the scripts it concerns (refresh_reply_addresses).
    """
    return _reply_addresses_of([mailbox])[mailbox.pk]


def _listing(mailboxes: list[Mailbox]) -> dict[int, list[str]]:
    """The sources of the active aliases listing each mailbox (not a catch-all).

    Destinations are a comma list, so finding the aliases is a substring scan of
    the table: one per mailbox for a few, else one per domain for all of them
    (the aliases naming the domain), which a big domain's alias-domain change needs."""
    found: dict[int, list[str]] = {mailbox.pk: [] for mailbox in mailboxes}
    by_domain: dict[int, list[Mailbox]] = {}
    for mailbox in mailboxes:
        by_domain.setdefault(mailbox.domain_id, []).append(mailbox)
    for group in by_domain.values():
        aliases = Alias.objects.filter(active=True).exclude(source__startswith="@")
        scans: list[tuple[Iterable[tuple[str, str]], dict[str, int]]]
        if len(group) <= _SCAN_PER_MAILBOX_MAX:
            scans = [(aliases.filter(destinations__contains=m.email).order_by("source")
                      .values_list("source", "destinations")[:ALIASES_MAX * 4], {m.email: m.pk})
                     for m in group]
        else:
            domain_name = group[0].email.rpartition("@")[2]
            scans = [(aliases.filter(destinations__contains=f"@{domain_name}").order_by("source")
                      .values_list("source", "destinations").iterator(chunk_size=2000),
                      {m.email: m.pk for m in group})]
        for rows, wanted in scans:
            for source, destinations in rows:
                for address in set(destinations.lower().replace(" ", ",").split(",")):
                    if address in wanted:
                        found[wanted[address]].append(source)
    return found


def _reply_addresses_of(mailboxes: list[Mailbox]) -> dict[int, list[str]]:
    """reply_addresses of each mailbox, by its pk."""
    listing = _listing(mailboxes)
    alias_domains: dict[int, list[str]] = {}
    for domain_id in {mailbox.domain_id for mailbox in mailboxes}:
        alias_domains[domain_id] = list(AliasDomain.objects.filter(
            target_id=domain_id, active=True).order_by("name")
            .values_list("name", flat=True)[:ALIASES_MAX])
    result: dict[int, list[str]] = {}
    for mailbox in mailboxes:
        local = mailbox.local_part
        found = listing[mailbox.pk][:ALIASES_MAX * 4]
        found += [f"{local}@{name}" for name in alias_domains[mailbox.domain_id]]
        result[mailbox.pk] = sorted(set(found) - {mailbox.email})[:ALIASES_MAX]
    return result


def _lock(mailboxes: QuerySet[Mailbox]) -> None:
    """Lock these mailbox rows until the transaction ends."""
    len(mailboxes.select_for_update().order_by("pk").values_list("pk", flat=True))


def refresh_reply_addresses(*, mailboxes: Collection[str], domain: Domain | None) -> None:
    """Rewrite the script of each mailbox concerned whose auto-reply is on, when its
    `:addresses` changed (domains.address_changes: called in the alias or alias
    domain's transaction; no audit row of its own, the change has one).

    A save of the rules (_save) locks the mailbox's domain, then the mailbox, then
    reads the addresses; so does this, in that order, and a save and a change at
    once are one after the other, the later one seeing the other's rows. With
    `domain`, the caller holds its row: no mailbox row of it needs locking (a
    200,000-mailbox domain's took half a second, and held them all). Listed
    mailboxes are locked in the order of their ids, all batches together (no
    deadlock between two imports).
    """
    concerned = MailRules.objects.filter(reply_enabled=True).select_related("mailbox")
    rules: dict[int, MailRules] = {}
    if domain is not None:
        rules.update((r.pk, r) for r in concerned.filter(mailbox__domain=domain))
    addresses = sorted(mailboxes)
    ids: list[int] = []
    for start in range(0, len(addresses), _LOCK_BATCH):
        ids += Mailbox.objects.filter(email__in=addresses[start:start + _LOCK_BATCH]
                                      ).values_list("pk", flat=True)
    ids.sort()
    for start in range(0, len(ids), _LOCK_BATCH):
        batch = ids[start:start + _LOCK_BATCH]
        _lock(Mailbox.objects.filter(pk__in=batch))
        rules.update((r.pk, r) for r in concerned.filter(mailbox_id__in=batch))
    ordered = sorted(rules.values(), key=lambda rule: rule.mailbox_id)
    for start in range(0, len(ordered), _LOCK_BATCH):
        _rewrite(ordered[start:start + _LOCK_BATCH])


def _rewrite(rules: list[MailRules]) -> None:
    """The scripts of `rules` that changed, replaced (a new row each: Dovecot compiles
    it afresh); the others keep their row."""
    addresses = _reply_addresses_of([rule.mailbox for rule in rules])
    current = dict(SieveScript.objects.filter(mailbox_id__in=[r.mailbox_id for r in rules])
                   .values_list("mailbox_id", "script"))
    changed = {rule.mailbox_id: (rule, text) for rule in rules
               if (text := _script_for(rule, addresses[rule.mailbox_id]))
               != current.get(rule.mailbox_id)}
    if not changed:
        return
    SieveScript.objects.filter(mailbox_id__in=list(changed)).delete()
    SieveScript.objects.bulk_create([
        SieveScript(mailbox=rule.mailbox, username=rule.mailbox.email, name=SCRIPT_NAME,
                    script=text) for rule, text in changed.values() if text])


def _clean_reply(*, enabled: bool, subject: str, text: str, start: datetime.date | None,
                 end: datetime.date | None, days: int) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if _SUBJECT_CONTROL.search(subject):
        errors["subject"] = ["The subject must be one line, without control characters."]
    elif len(subject) > SUBJECT_MAX:
        errors["subject"] = [f"The subject is {len(subject)} characters; at most {SUBJECT_MAX}."]
    elif enabled and not subject.strip():
        errors["subject"] = ["Give the reply a subject."]
    if _CONTROL.search(text):
        errors["text"] = ["The text cannot contain control characters."]
    elif len(text) > TEXT_MAX:
        errors["text"] = [f"The text is {len(text)} characters; at most {TEXT_MAX}."]
    elif enabled and not text.strip():
        errors["text"] = ["Write the text of the reply."]
    if not DAYS_MIN <= days <= DAYS_MAX:
        errors["days"] = [f"Between {DAYS_MIN} and {DAYS_MAX} days."]
    if start and end and end < start:
        errors["until"] = ["The last day comes before the first."]
    return errors


def clean_forward_to(raw: str, mailbox: Mailbox) -> list[str]:
    """The forward targets, normalised, deduplicated, in the order given."""
    parts = [p for p in re.split(r"[\s,;]+", raw.strip()) if p]
    if len(parts) > FORWARD_MAX:
        raise ValidationError({"forward_to": [f"At most {FORWARD_MAX} addresses."]})
    targets: list[str] = []
    for part in parts:
        try:
            address = normalize_address(part)
        except ValidationError as error:
            raise ValidationError({"forward_to": error.messages}) from None
        if address == mailbox.email:
            raise ValidationError({"forward_to": [
                "That is this mailbox; choose “keep a copy” to keep mail here."]})
        if address not in targets:
            targets.append(address)
    return targets


def _script_for(rules: MailRules, addresses: list[str] | None = None) -> str:
    reply = None
    if rules.reply_enabled:
        if addresses is None:
            addresses = reply_addresses(rules.mailbox)
        reply = sieve.Reply(subject=rules.reply_subject, text=rules.reply_text,
                            days=rules.reply_days, start=rules.reply_from,
                            end=rules.reply_until, addresses=addresses)
    return sieve.script(reply=reply, forward_to=rules.forward_list, keep=rules.forward_keep)


def _install_script(rules: MailRules, text: str) -> None:
    """Replace the mailbox's script row: a new id, so Dovecot compiles it afresh."""
    SieveScript.objects.filter(mailbox=rules.mailbox).delete()
    if text:
        SieveScript.objects.create(mailbox=rules.mailbox, username=rules.mailbox.email,
                                   name=SCRIPT_NAME, script=text)


def _save(actor: Actor, mailbox: Mailbox, action: str, changes: dict[str, object]) -> MailRules:
    with transaction.atomic():
        # The domain's row first, as every writer of its addresses (refresh_reply_addresses).
        len(Domain.objects.select_for_update().filter(pk=mailbox.domain_id).values_list("pk"))
        locked = Mailbox.objects.select_for_update().filter(pk=mailbox.pk).first()
        if locked is None:
            raise ValidationError(f"{mailbox} no longer exists.")
        rules = MailRules.objects.select_for_update().filter(mailbox=locked).first() \
            or MailRules(mailbox=locked)
        fields = list(changes)
        before = audit.snapshot(rules, fields) if rules.pk else None
        for name, value in changes.items():
            setattr(rules, name, value)
        rules.save()
        _install_script(rules, _script_for(rules))
        audit.record(actor=actor, action=action, obj=locked, domain=locked.domain,
                     before=before, after=audit.snapshot(rules, fields))
    return rules


def set_auto_reply(*, actor: Actor, mailbox: Mailbox, enabled: bool, subject: str, text: str,
                   start: datetime.date | None = None, end: datetime.date | None = None,
                   days: int = 7) -> MailRules:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    errors = _clean_reply(enabled=enabled, subject=subject, text=text, start=start, end=end,
                          days=days)
    if errors:
        raise ValidationError(errors)
    return _save(actor, mailbox, "mailbox.auto_reply", {
        "reply_enabled": enabled, "reply_subject": subject.strip(), "reply_text": text,
        "reply_from": start, "reply_until": end, "reply_days": days})


def set_forwarding(*, actor: Actor, mailbox: Mailbox, forward_to: str, keep: bool) -> MailRules:
    targets = clean_forward_to(forward_to, mailbox)
    return _save(actor, mailbox, "mailbox.forwarding", {
        "forward_to": ",".join(targets), "forward_keep": keep or not targets})
