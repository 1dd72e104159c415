"""The DKIM keys of a domain: listed with their records, generated, checked, set by hand."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from core import jobs
from core.http import actor, confirm_delete, show_errors
from dkim import records, selectors, services
from dkim.forms import DkimKeyForm, GenerateForm, RotationForm
from dkim.models import DkimKey, DkimRotation
from domains.access import admin_required, domain_or_404
from domains.models import Domain
from mailhost import privileged

PAGE = "dkim/key.html"


def _health(domain: Domain) -> str:
    return reverse("domains:domain-detail", args=[domain.name]) + "#dns-health"


def key_view(key: DkimKey) -> dict[str, object]:
    """One key as the page shows it: its record as a zone line and as host/type/value."""
    row: dict[str, object] = {"key": key, "grace_ends": services.grace_ends(key)}
    if key.public_key:
        row["record"] = records.txt_record(key.selector, key.domain_name, key.algorithm,
                                           key.public_key)
        row["parts"] = records.record_parts(key.selector, key.domain_name, key.algorithm,
                                            key.public_key)
        try:
            row["bits"] = records.key_bits(key.public_key, key.algorithm)
        except records.BadKey as error:
            # Stored keys were checked when set; say so rather than fail if one is not.
            row["key_problem"] = str(error)
    if key.state == DkimKey.State.REVOKED:
        row["revoked_record"] = records.revoked_record(key.selector, key.domain_name,
                                                       key.algorithm)
    return row


def _context(domain: Domain, form: DkimKeyForm, generate_form: GenerateForm | None = None,
             rotation_form: RotationForm | None = None) -> dict[str, object]:
    keys = selectors.domain_keys(domain)
    current = selectors.active_key(domain)
    days = services.rotation_days(domain)
    own = DkimRotation.objects.filter(domain=domain).first()
    return {"domain": domain, "form": form, "generate_form": generate_form or GenerateForm(),
            "rotation_form": rotation_form or RotationForm(
                initial={"days": "" if own is None else (own.days or "off")}),
            "rotation_days": days, "stall_days": settings.MAILADMIN_DKIM_STALL_DAYS,
            "key": current, "keys": [key_view(k) for k in keys],
            "external_key": current if current and current.external else None,
            "has_helper": privileged.has_helper()}


@admin_required
@require_http_methods(["GET", "POST"])
def key(request: HttpRequest, name: str) -> HttpResponse:
    domain = domain_or_404(request, name)
    current = selectors.active_key(domain)
    form = DkimKeyForm(request.POST or None,
                       initial={"selector": current.selector if current else ""})
    if request.method == "POST" and form.is_valid():
        try:
            row = services.set_key(actor=actor(request), domain=domain,
                                   selector=form.cleaned_data["selector"],
                                   public_key=form.cleaned_data["public_key"])
        except ValidationError as error:
            show_errors(form, error)
        else:
            bits = records.key_bits(row.public_key, row.algorithm)
            messages.success(request, f"Set the DKIM key {row.selector}._domainkey.{domain.name} "
                                      f"({row.algorithm}, {bits} bits). Check now to see "
                                      f"whether its record is published.")
            if warning := records.weak_key_warning(row.algorithm, bits):
                messages.warning(request, warning)
            return redirect(_health(domain))
    return render(request, PAGE, _context(domain, form))


@admin_required
def generate(request: HttpRequest, name: str) -> HttpResponse:
    """POST only: a new key, made on the mail host; the page shows its record once made."""
    domain = domain_or_404(request, name)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = GenerateForm(request.POST)
    if form.is_valid():
        algorithm = form.cleaned_data["algorithm"]
        try:
            row = services.generate(
                actor=actor(request), domain=domain, algorithm=algorithm,
                bits=form.cleaned_data["bits"] if algorithm == "rsa" else None)
        except ValidationError as error:
            show_errors(form, error)
        except jobs.QueueDown as down:
            # The key is recorded and waits for the host (beat asks again): said, not refused.
            messages.warning(request, str(down))
            return redirect("dkim:key", domain.name)
        else:
            row.refresh_from_db()
            made = ("Its record to publish is below." if row.public_key else
                    "The mail host is making it; reload this page for its record.")
            messages.success(request, f"New DKIM key {row.owner} ({row.algorithm}, "
                                      f"{row.bits} bits). {made}")
            return redirect("dkim:key", domain.name)
    return render(request, PAGE, _context(domain, DkimKeyForm(), form), status=400)


@admin_required
def check(request: HttpRequest, name: str) -> HttpResponse:
    """POST only: look for the domain's pending and revoked keys on its name servers now."""
    domain = domain_or_404(request, name)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    services.request_check(domain=domain)
    messages.success(request, f"Asked {domain.name}'s name servers for its new and revoked "
                              "DKIM records; the states below show what they said.")
    return redirect("dkim:key", domain.name)


@admin_required
def remove(request: HttpRequest, name: str) -> HttpResponse:
    """POST only: the confirmation is the DKIM page's own "Remove the key" step."""
    # The domain first: outside the user's reach is a 404 whatever the method.
    domain = domain_or_404(request, name)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])

    def forget() -> str:
        services.remove_key(actor=actor(request), domain=domain)
        return f"Removed the DKIM key of {domain.name}; its DKIM check has no key to compare."

    return confirm_delete(request, PAGE, _context(domain, DkimKeyForm()), forget,
                          _health(domain))


@admin_required
def rotate(request: HttpRequest, name: str) -> HttpResponse:
    """POST only: a new key for each algorithm the domain signs with; the tick does the rest."""
    domain = domain_or_404(request, name)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        made = services.rotate(actor=actor(request), domain=domain)
    except ValidationError as error:
        messages.error(request, "; ".join(error.messages))
    else:
        messages.success(request, "Rotation started: " + ", ".join(k.owner for k in made)
                         + ". Publish the new record; the key signs once DNS shows it.")
    return redirect("dkim:key", domain.name)


@admin_required
def rotation(request: HttpRequest, name: str) -> HttpResponse:
    """POST only: the domain's rotation interval."""
    domain = domain_or_404(request, name)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = RotationForm(request.POST)
    if form.is_valid():
        try:
            services.set_rotation(actor=actor(request), domain=domain,
                                  days=form.cleaned_data["days"])
        except ValidationError as error:
            show_errors(form, error)
        else:
            days = services.rotation_days(domain)
            messages.success(request, f"{domain.name}: " + (
                f"a new key every {days} days." if days else "unattended rotation is off."))
            return redirect("dkim:key", domain.name)
    return render(request, PAGE, _context(domain, DkimKeyForm(), rotation_form=form),
                  status=400)
