"""Mail program setup: the public autoconfig and autodiscover answers, and the pages
that give a person the same settings.

The public answers depend only on the domain asked about, never on whether
the address has a mailbox: a served domain gets the same answer for every
address, anything else an empty 404.
"""

from __future__ import annotations

import re

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from clientsetup import selectors
from domains import handover
from domains.access import (
    admin_required,
    domain_or_404,
    mailbox_or_404,
    mailbox_required,
    own_mailbox,
)

# Outlook's request is a few hundred bytes; nothing longer is read.
AUTODISCOVER_BODY_MAX = 8192
_EMAIL_ELEMENT = re.compile(rb"<EMailAddress>\s*([^<]{1,300}?)\s*</EMailAddress>", re.IGNORECASE)


def _not_served() -> HttpResponse:
    return HttpResponse(status=404, content_type="text/plain")


def _xml(request: HttpRequest, template: str, context: dict[str, object]) -> HttpResponse:
    response = render(request, template, context, content_type="application/xml; charset=utf-8")
    # Nothing private in it, but a proxy should not mix up answers of two domains.
    response["Cache-Control"] = "no-store"
    return response


def _host_domain(request: HttpRequest) -> str:
    """The domain a request to autoconfig.<domain> (or <domain>/.well-known/...) is about."""
    host = selectors.host_without_port(request.get_host()).lower().rstrip(".")
    return host.removeprefix("autoconfig.")


@require_GET
def autoconfig(request: HttpRequest) -> HttpResponse:
    """Thunderbird's config-v1.1.xml: every server a client may use, best first."""
    address = request.GET.get("emailaddress", "")
    domain = selectors.address_domain(address) if address else _host_domain(request)
    login = selectors.login_domain(domain) if domain else None
    found = selectors.client_settings()
    # The embedded default's machine name is no server to give a mail program.
    if domain is None or login is None or not found.is_public:
        return _not_served()
    username = "%EMAILADDRESS%" if login == domain else f"%EMAILLOCALPART%@{login}"
    return _xml(request, "clientsetup/config-v1.1.xml", {
        "domain": domain, "username": username, "found": found})


@csrf_exempt
@require_http_methods(["GET", "POST"])
def autodiscover(request: HttpRequest) -> HttpResponse:
    """Outlook's POX autodiscover: its request names the address in <EMailAddress>."""
    if request.method == "POST":
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= AUTODISCOVER_BODY_MAX:
            return HttpResponse(status=400, content_type="text/plain")
        found = _EMAIL_ELEMENT.search(request.read(AUTODISCOVER_BODY_MAX))
        raw = found.group(1) if found else b""
        address = raw.decode("utf-8", "replace")
    else:
        address = request.GET.get("emailaddress", request.GET.get("Email", ""))
    domain = selectors.address_domain(address)
    login = selectors.login_domain(domain) if domain else None
    found_settings = selectors.client_settings()
    if domain is None or login is None or not found_settings.is_public:
        return _not_served()
    local = address.rsplit("@", 1)[0]
    return _xml(request, "clientsetup/autodiscover.xml", {
        "login": f"{local}@{login}", "imap": found_settings.incoming[0],
        "smtp": found_settings.outgoing[0]})


@mailbox_required
@require_GET
def connect(request: HttpRequest) -> HttpResponse:
    """A mailbox user's own settings, to type into a mail program that does not find them."""
    mailbox = own_mailbox(request)
    if mailbox is None:  # mailbox_required has checked; this keeps the type exact
        raise Http404
    return render(request, "clientsetup/connect.html", {
        "email": mailbox.email, "found": selectors.client_settings()})


@admin_required
@require_GET
# Its first opening after a generated password may carry that password.
@never_cache
def welcome_sheet(request: HttpRequest, email: str) -> HttpResponse:
    """A printable page for the mailbox's owner: address, servers, where to change the
    password, and a password just generated for it, on the first opening only."""
    mailbox = mailbox_or_404(request, email)
    return render(request, "clientsetup/welcome.html", {
        "mailbox": mailbox, "found": selectors.client_settings(),
        "password": handover.take_for_sheet(request, mailbox),
        # Opened as localhost (the default allowed hosts), the panel's address
        # would send the sheet's reader to their own machine: the path only then.
        "panel_is_public": selectors.panel_is_public(request.get_host())})


@admin_required
@require_GET
def domain_records(request: HttpRequest, name: str) -> HttpResponse:
    """The DNS records that let mail programs of a domain find their servers."""
    domain = domain_or_404(request, name)
    return render(request, "clientsetup/records.html", {
        "domain": domain, "found": selectors.client_settings(),
        "records": "\n".join(selectors.dns_records(domain.name, panel_host=request.get_host())),
        "warnings": selectors.dns_warnings(panel_host=request.get_host())})
