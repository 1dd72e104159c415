"""A mailbox's auto-reply and forwarding: on the user's own page and, for the
admins who reach the mailbox, beside the mailbox page."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from core.actor import Actor
from core.http import actor, show_errors
from domains.access import admin_required, mailbox_or_404, mailbox_required, own_mailbox
from domains.models import Mailbox
from vacation import services
from vacation.forms import AutoReplyForm, ForwardForm
from vacation.models import MailRules


def _part(request: HttpRequest) -> str | None:
    """Which of the two forms was sent (its hidden field), if any."""
    if request.method != "POST":
        return None
    for part in ("reply", "forward"):
        if request.POST.get(f"{part}-part") == part:
            return part
    return None


def _forms(request: HttpRequest, rules: MailRules) -> tuple[AutoReplyForm, ForwardForm]:
    part = _part(request)
    reply = AutoReplyForm(request.POST if part == "reply" else None, initial={
        "enabled": rules.reply_enabled, "subject": rules.reply_subject,
        "text": rules.reply_text, "start": rules.reply_from, "end": rules.reply_until,
        "days": rules.reply_days}, prefix="reply")
    forward = ForwardForm(request.POST if part == "forward" else None, initial={
        "forward_to": ", ".join(rules.forward_list), "keep": rules.forward_keep},
        prefix="forward")
    return reply, forward


def _page(request: HttpRequest, mailbox: Mailbox, who: Actor, back: str) -> HttpResponse:
    rules = services.rules_of(mailbox)
    reply, forward = _forms(request, rules)
    context = {"mailbox": mailbox, "rules": rules, "reply": reply, "forward": forward,
               "back": back}
    part = _part(request)
    if request.method == "POST" and part is None:
        # The hidden field is missing or changed: neither form was sent.
        return render(request, "vacation/rules.html", context, status=400)
    try:
        if part == "reply" and reply.is_valid():
            data = reply.cleaned_data
            services.set_auto_reply(actor=who, mailbox=mailbox, enabled=data["enabled"],
                                    subject=data["subject"], text=data["text"],
                                    start=data["start"], end=data["end"], days=data["days"])
            messages.success(request, "The automatic reply is saved.")
            return redirect(request.path)
        if part == "forward" and forward.is_valid():
            data = forward.cleaned_data
            services.set_forwarding(actor=who, mailbox=mailbox, forward_to=data["forward_to"],
                                    keep=data["keep"])
            messages.success(request, "Forwarding is saved.")
            return redirect(request.path)
    except ValidationError as error:
        show_errors(reply if part == "reply" else forward, error,
                    {"start": "start", "end": "end", "until": "end"})
    invalid = bool(reply.errors or forward.errors)
    return render(request, "vacation/rules.html", context, status=400 if invalid else 200)


@mailbox_required
@require_http_methods(["GET", "POST"])
def own_rules(request: HttpRequest) -> HttpResponse:
    mailbox = own_mailbox(request)
    if mailbox is None:  # mailbox_required has checked; this keeps the type exact
        raise Http404
    return _page(request, mailbox, Actor.mailbox(mailbox.email), "accounts:me")


@admin_required
@require_http_methods(["GET", "POST"])
def mailbox_rules(request: HttpRequest, email: str) -> HttpResponse:
    mailbox = mailbox_or_404(request, email)
    return _page(request, mailbox, actor(request), "domains:mailbox-edit")
