"""The public autoconfig/autodiscover answers and the pages with the same settings."""

# The panel's own answers, parsed to read them back: nothing untrusted.
import xml.etree.ElementTree as ET

import pytest
from django.test import Client

from clientsetup import selectors
from domains import services
from tests.conftest import change_host

AUTOCONFIG = "/mail/config-v1.1.xml"
WELL_KNOWN = "/.well-known/autoconfig/mail/config-v1.1.xml"
AUTODISCOVER = "/autodiscover/autodiscover.xml"
OUTLOOK_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request><EMailAddress>{address}</EMailAddress>
  <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request></Autodiscover>"""
NS = {"r": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}


@pytest.fixture
def host(settings):
    settings.MAILADMIN_SUBMISSION_LISTEN = "submission"
    settings.MAILADMIN_IMAP_LISTEN = "127.0.0.1:143"
    settings.MAILADMIN_IMAPS_PORT = 993
    settings.ALLOWED_HOSTS = ["testserver", ".a.example", ".alias.example", ".none.example"]
    change_host(mail_hostname="mx.host.test")


def servers(body: bytes) -> list[tuple[str, str, str, str, str]]:
    root = ET.fromstring(body)  # noqa: S314
    return [(s.tag, s.findtext("hostname"), s.findtext("port"), s.findtext("socketType"),
             s.findtext("username"))
            for s in root.iter() if s.tag in ("incomingServer", "outgoingServer")]


def autodiscover(client: Client, address: str, path: str = AUTODISCOVER):
    return client.post(path, OUTLOOK_REQUEST.format(address=address), content_type="text/xml")


def test_autoconfig_lists_the_rendered_services(world, host):
    response = Client().get(AUTOCONFIG, {"emailaddress": "bob@a.example"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    assert servers(response.content) == [
        ("incomingServer", "mx.host.test", "993", "SSL", "%EMAILADDRESS%"),
        ("incomingServer", "mx.host.test", "143", "STARTTLS", "%EMAILADDRESS%"),
        ("outgoingServer", "mx.host.test", "587", "STARTTLS", "%EMAILADDRESS%"),
    ]


def test_ports_follow_the_listen_settings(world, host, settings):
    settings.MAILADMIN_SUBMISSION_LISTEN = "192.0.2.1:2587"
    settings.MAILADMIN_IMAP_LISTEN = "[::1]:1143"
    settings.MAILADMIN_IMAPS_PORT = 0
    response = Client().get(WELL_KNOWN, {"emailaddress": "bob@a.example"})
    assert [(s[2], s[3]) for s in servers(response.content)] == [
        ("1143", "STARTTLS"), ("2587", "STARTTLS")]


def test_autoconfig_by_host_name_without_an_address(world, host):
    response = Client().get(AUTOCONFIG, HTTP_HOST="autoconfig.a.example")
    assert response.status_code == 200
    assert b"<domain>a.example</domain>" in response.content


def test_an_alias_domain_signs_in_as_its_target(world, host):
    services.create_alias_domain(actor="t", name="alias.example", target="a.example")
    response = Client().get(AUTOCONFIG, {"emailaddress": "bob@alias.example"})
    assert {s[4] for s in servers(response.content)} == {"%EMAILLOCALPART%@a.example"}
    answer = ET.fromstring(  # noqa: S314
        autodiscover(Client(), "bob@alias.example").content)
    assert {e.text for e in answer.iterfind(".//r:LoginName", NS)} == {"bob@a.example"}


def test_the_answer_does_not_tell_whether_a_mailbox_exists(world, host):
    client = Client()
    existing = client.get(AUTOCONFIG, {"emailaddress": "bob@a.example"}).content
    assert client.get(AUTOCONFIG, {"emailaddress": "nobody@a.example"}).content == existing
    one = autodiscover(client, "bob@a.example").content
    other = autodiscover(client, "nobody@a.example").content
    assert one.replace(b"bob@", b"X@") == other.replace(b"nobody@", b"X@")


def test_autodiscover_answers_outlook(world, host):
    for path in (AUTODISCOVER, "/Autodiscover/Autodiscover.xml"):
        response = autodiscover(Client(enforce_csrf_checks=True), "bob@a.example", path)
        assert response.status_code == 200, path
        answer = ET.fromstring(response.content)  # noqa: S314
        protocols = [(p.findtext("r:Type", namespaces=NS), p.findtext("r:Server", namespaces=NS),
                      p.findtext("r:Port", namespaces=NS),
                      p.findtext("r:Encryption", namespaces=NS),
                      p.findtext("r:LoginName", namespaces=NS))
                     for p in answer.iterfind(".//r:Protocol", NS)]
        assert protocols == [("IMAP", "mx.host.test", "993", "SSL", "bob@a.example"),
                             ("SMTP", "mx.host.test", "587", "TLS", "bob@a.example")]
    assert Client().get(AUTODISCOVER, {"emailaddress": "bob@a.example"}).status_code == 200


@pytest.mark.parametrize("address", [
    "bob@none.example", "bob@b.example.evil", "", "bob", "@a.example", "bob@", "a@b@a.example",
    "x" * 250 + "@a.example", "bob@" + "a" * 300 + ".example", "<bob@a.example>",
    "bob@a.example\nx", "bob\n@a.example", "bob@a.example\x00", "bob@%s" % ("é" * 10),
])
def test_anything_but_a_served_domain_is_an_empty_404(world, host, address):
    client = Client()
    for response in (client.get(AUTOCONFIG, {"emailaddress": address}),
                     client.get(WELL_KNOWN, {"emailaddress": address}),
                     autodiscover(client, address)):
        assert response.status_code in (400, 404), address
        assert response.content == b""


def test_a_disabled_domain_is_not_served(world, host):
    world.b.active = False
    world.b.save()
    assert Client().get(AUTOCONFIG, {"emailaddress": "carol@b.example"}).status_code == 404


@pytest.mark.parametrize("body", [
    b"", b"garbage", b"<Autodiscover>", b"\xff\xfe\x00<", b"<EMailAddress></EMailAddress>",
    b'<!DOCTYPE a [<!ENTITY x "bob@a.example">]><EMailAddress>&x;</EMailAddress>',
    b"<EMailAddress>" + b"a" * 5000 + b"@a.example</EMailAddress>",
])
def test_garbage_autodiscover_is_refused_without_an_error(world, host, body):
    response = Client().post(AUTODISCOVER, body, content_type="text/xml")
    assert response.status_code == 404
    assert response.content == b""


def test_an_oversized_autodiscover_body_is_not_read(world, host):
    body = OUTLOOK_REQUEST.format(address="bob@a.example") + " " * 9000
    response = Client().post(AUTODISCOVER, body, content_type="text/xml")
    assert response.status_code == 400


def test_an_unknown_host_gets_django_s_refusal(world, host):
    assert Client().get(AUTOCONFIG, HTTP_HOST="autoconfig.other.test").status_code == 400


def test_connect_page_shows_the_mailbox_s_settings(world, host):
    page = world.client_for("mailbox").get("/me/mail-client/").content.decode()
    assert "mx.host.test" in page and "993" in page and "587" in page and "STARTTLS" in page
    assert "bob@a.example" in page


def test_welcome_sheet(world, host):
    page = world.client_for("admin_a").get("/mailboxes/bob@a.example/welcome/").content.decode()
    assert "bob@a.example" in page and "mx.host.test" in page and "/me/password/" in page


def test_dns_records(world, host, settings):
    settings.MAILADMIN_SUBMISSION_LISTEN = "127.0.0.1:2587"
    assert selectors.dns_records("A.example", panel_host="panel.host.test:8443") == [
        "_submission._tcp.a.example. 3600 IN SRV 0 1 2587 mx.host.test.",
        "_imap._tcp.a.example. 3600 IN SRV 10 1 143 mx.host.test.",
        "_imaps._tcp.a.example. 3600 IN SRV 0 1 993 mx.host.test.",
        "_pop3._tcp.a.example. 3600 IN SRV 0 0 0 .",
        "_pop3s._tcp.a.example. 3600 IN SRV 0 0 0 .",
        "autoconfig.a.example. 3600 IN CNAME panel.host.test.",
        "autodiscover.a.example. 3600 IN CNAME panel.host.test.",
    ]
    settings.MAILADMIN_IMAPS_PORT = 0
    records = selectors.dns_records("a.example", panel_host="[2001:db8::1]:443")
    assert "_imaps._tcp.a.example. 3600 IN SRV 0 0 0 ." in records
    assert "autoconfig.a.example. 3600 IN AAAA 2001:db8::1" in records
    assert "autodiscover.a.example. 3600 IN A 192.0.2.7" in selectors.dns_records(
        "a.example", panel_host="192.0.2.7")
    page = world.client_for("admin_a").get("/domains/a.example/mail-clients/").content.decode()
    assert "_submission._tcp.a.example." in page
