"""The autoconfig and autodiscover answers name the stack's running Dovecot and Postfix:
a mail program that follows them signs in over IMAP with STARTTLS and submits mail."""

import imaplib
import smtplib
import socket
import ssl
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from django.test import Client, override_settings

from domains import services

pytestmark = pytest.mark.daemons

PW = "correct horse battery"
NS = {"r": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
OUTLOOK_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/'
    'exchange/autodiscover/outlook/requestschema/2006"><Request>'
    "<EMailAddress>bob@example.org</EMailAddress><AcceptableResponseSchema>http://schemas."
    "microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
    "</AcceptableResponseSchema></Request></Autodiscover>")


class LoopbackIMAP(imaplib.IMAP4):
    """Connects to 127.0.0.1 but checks the certificate against the advertised name."""

    def _create_socket(self, timeout):  # type: ignore[no-untyped-def]
        return socket.create_connection(("127.0.0.1", self.port), timeout)


class LoopbackSMTP(smtplib.SMTP):
    def _get_socket(self, host, port, timeout):  # type: ignore[no-untyped-def]
        return socket.create_connection(("127.0.0.1", port), timeout)


@pytest.fixture
def served(stack):
    # The stack's Dovecot has no IMAPS listener; its IMAP port is the probe's.
    with override_settings(MAILADMIN_IMAP_LISTEN=f"127.0.0.1:{stack.ports['imap']}",
                           MAILADMIN_IMAPS_PORT=0):
        services.create_domain(actor="t", name="example.org")
        services.create_mailbox(actor="t", email="bob@example.org", password=PW)
        yield stack


def trusting_the_stack(stack) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=stack.overrides["MAILADMIN_TLS_CERT"])
    context.hostname_checks_common_name = True  # the stack's certificate names only a CN
    return context


def follow(stack, kind: str, hostname: str, port: int, security: str, username: str) -> None:
    """Do what a mail program does with one advertised server: connect, STARTTLS, sign in."""
    assert security in ("STARTTLS", "TLS"), security
    context = trusting_the_stack(stack)
    if kind == "imap":
        imap = LoopbackIMAP(hostname, port, timeout=20)
        try:
            imap.starttls(context)
            assert imap.login(username, PW)[0] == "OK"
        finally:
            imap.logout()
    else:
        with LoopbackSMTP(hostname, port, timeout=20) as smtp:
            smtp.starttls(context=context)
            smtp.login(username, PW)


def test_autoconfig_over_http_leads_to_the_running_daemons(served, live_server):
    stack = served
    url = f"{live_server.url}/mail/config-v1.1.xml?emailaddress=bob%40example.org"
    with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 (our live server)
        assert response.status == 200
        body = response.read()
    assert body == Client().get("/mail/config-v1.1.xml",
                                {"emailaddress": "bob@example.org"}).content
    root = ET.fromstring(body)  # noqa: S314 (our own answer)
    advertised = [(s.get("type"), s.findtext("hostname"), int(s.findtext("port") or 0),
                   s.findtext("socketType"), s.findtext("username"))
                  for s in root.iter() if s.tag in ("incomingServer", "outgoingServer")]
    hostname = stack.overrides["MAILADMIN_MAIL_HOSTNAME"]
    assert advertised == [
        ("imap", hostname, stack.ports["imap"], "STARTTLS", "%EMAILADDRESS%"),
        ("smtp", hostname, stack.ports["submission"], "STARTTLS", "%EMAILADDRESS%"),
    ]
    for kind, host, port, security, username in advertised:
        follow(stack, kind, host, port, security,
               username.replace("%EMAILADDRESS%", "bob@example.org"))


def test_autodiscover_over_http_leads_to_the_running_daemons(served, live_server):
    stack = served
    request = urllib.request.Request(  # noqa: S310 (our live server)
        f"{live_server.url}/autodiscover/autodiscover.xml", data=OUTLOOK_REQUEST.encode(),
        headers={"Content-Type": "text/xml"}, method="POST")
    with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
        assert response.status == 200
        body = response.read()
    assert body == Client().post("/autodiscover/autodiscover.xml", OUTLOOK_REQUEST,
                                 content_type="text/xml").content
    root = ET.fromstring(body)  # noqa: S314 (our own answer)
    found = {p.findtext("r:Type", namespaces=NS): (
        p.findtext("r:Server", namespaces=NS), int(p.findtext("r:Port", namespaces=NS) or 0),
        p.findtext("r:Encryption", namespaces=NS), p.findtext("r:LoginName", namespaces=NS))
        for p in root.iterfind(".//r:Protocol", NS)}
    hostname = stack.overrides["MAILADMIN_MAIL_HOSTNAME"]
    assert found == {
        "IMAP": (hostname, stack.ports["imap"], "TLS", "bob@example.org"),
        "SMTP": (hostname, stack.ports["submission"], "TLS", "bob@example.org"),
    }
    for kind, (host, port, security, login) in found.items():
        follow(stack, kind.lower(), host, port, security, login)


def test_a_wrong_password_with_the_advertised_settings_is_refused(served):
    stack = served
    imap = LoopbackIMAP(stack.overrides["MAILADMIN_MAIL_HOSTNAME"], stack.ports["imap"],
                        timeout=20)
    imap.starttls(trusting_the_stack(stack))
    with pytest.raises(imaplib.IMAP4.error):
        imap.login("bob@example.org", "wrong password")
    imap.logout()
