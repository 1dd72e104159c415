"""Self-service for mailbox users: their quota and their own password."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.sessions import keep_signed_in
from core.http import show_errors
from domains import services
from domains.access import mailbox_required, own_mailbox
from domains.forms import OwnPasswordForm
from domains.models import Mailbox


def _mailbox(request: HttpRequest) -> Mailbox:
    mailbox = own_mailbox(request)
    if mailbox is None:  # mailbox_required has checked; this keeps the type exact
        raise Http404
    return mailbox


@mailbox_required
def me(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/me.html", {"mailbox": _mailbox(request)})


@mailbox_required
@require_http_methods(["GET", "POST"])
def password(request: HttpRequest) -> HttpResponse:
    mailbox = _mailbox(request)
    form = OwnPasswordForm(request.POST or None, hint_url=reverse("accounts:password-hint"))
    if request.method == "POST" and form.is_valid():
        # The current password goes through authenticate(): a guess here is
        # counted, locked out and logged for fail2ban like one at sign-in.
        if authenticate(request, username=mailbox.email,
                        password=form.cleaned_data["current"]) is None:
            form.add_error("current", "That is not your current password.")
            return render(request, "accounts/password.html", {"form": form, "mailbox": mailbox},
                          status=400)
        try:
            services.change_own_password(mailbox=mailbox, current=form.cleaned_data["current"],
                                         new=form.cleaned_data["new"])
        except ValidationError as error:
            show_errors(form, error)
        else:
            # The change ended every session of this mailbox; this one goes on.
            account = User.objects.get(username=request.user.get_username())
            keep_signed_in(request, account)
            messages.success(request, "Your password is changed, for mail programs too.")
            return redirect("accounts:me")
    return render(request, "accounts/password.html", {"form": form, "mailbox": mailbox},
                  status=400 if form.errors else 200)


@mailbox_required
@require_POST
def password_hint(request: HttpRequest) -> HttpResponse:
    """The policy and a strength estimate for what is typed so far (htmx)."""
    mailbox = _mailbox(request)
    new = request.POST.get("new", "")
    problems = services.password_policy_problems(new, mailbox.email) if new else []
    classes = sum(any(test(c) for c in new) for test in (
        str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum()))
    score = 0 if problems else min(4, len(new) // 6 + classes - 1)
    words = ["too weak", "weak", "fair", "good", "strong"]
    return render(request, "accounts/_password_hint.html",
                  {"problems": problems, "score": max(score, 0),
                   "word": words[max(score, 0)], "typed": bool(new)})
