"""The first day: the dashboard's setup steps, the mail host setup page, and no page
that gives out the embedded default's machine name (localhost) as advice."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from accounts import services as account_services
from clientsetup import selectors as client_setup
from core.models import AuditEntry
from domains import services
from mailhost.models import MailHost
from tests.conftest import change_host
from tests.mailadmin.test_hostile_input import FUZZ, TEXT, check, counts

ROOT_PW = "root passphrase 123"
FRESH = {"mail_hostname": "localhost", "mx_hosts": [], "public_ipv4": [], "public_ipv6": []}
SET_UP = {"mail_hostname": "mail.example.org", "mx_hosts": [], "public_ipv4": ["192.0.2.10"],
          "public_ipv6": []}
SETUP_POST = {"mail_hostname": "mail.example.org", "mx_hosts": "",
              "public_ipv4": "192.0.2.10", "public_ipv6": "2001:db8::10"}


@pytest.fixture
def fresh(db) -> Client:
    """A fresh install: the quickstart's superadmin, the host row as the settings made it."""
    change_host(**FRESH)
    user = account_services.create_superadmin(actor="t", username="admin", password=ROOT_PW)
    client = Client()
    client.force_login(user)
    return client


def text(response) -> str:
    return response.content.decode()


def test_a_fresh_dashboard_leads_to_the_two_steps(fresh):
    page = text(fresh.get("/"))
    assert "Get started" in page
    assert f'href="{reverse("mailhost:setup")}"' in page and "Set up the mail host" in page
    assert f'href="{reverse("domains:domain-create")}"' in page and "Add the first domain" in page


def test_the_steps_tick_as_they_are_done_and_then_go(fresh):
    change_host(**SET_UP)
    page = text(fresh.get("/"))
    assert "Get started" in page and "Set up the mail host</a>" not in page
    assert "Add the first domain" in page
    services.create_domain(actor="t", name="example.org")
    assert "Get started" not in text(fresh.get("/"))


def test_a_domain_admin_never_sees_the_setup(world):
    change_host(**FRESH)
    page = text(world.client_for("admin_a").get("/"))
    assert "Get started" not in page and reverse("mailhost:setup") not in page


def test_the_setup_form_does_not_suggest_the_default_name(fresh):
    page = text(fresh.get(reverse("mailhost:setup")))
    assert 'name="mail_hostname"' in page
    assert 'value="localhost"' not in page


def test_setup_saves_the_names_and_addresses_with_an_audit_row(fresh):
    response = fresh.post(reverse("mailhost:setup"), SETUP_POST)
    assert response.status_code == 302 and response["Location"] == reverse("home")
    host = MailHost.current()
    assert (host.mail_hostname, host.public_ipv4, host.public_ipv6) == (
        "mail.example.org", ["192.0.2.10"], ["2001:db8::10"])
    assert host.is_set_up
    entry = AuditEntry.objects.filter(action="mailhost.update").latest("id")
    assert entry.after["mail_hostname"] == "mail.example.org"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("mail_hostname", "localhost", "is not a public DNS name"),
    ("mail_hostname", "mailserver", "is not a public DNS name"),
    ("mail_hostname", "mail.example.lan.local", "is not a public DNS name"),
    ("mx_hosts", "mx.localdomain", "is not a public DNS name"),
    # What a fresh cloud or home machine calls itself (getfqdn), never in public DNS.
    ("mail_hostname", "ip-172-31-5-6.eu-west-1.compute.internal", "is not a public DNS name"),
    ("mail_hostname", "mail.home.arpa", "is not a public DNS name"),
    ("mail_hostname", "debian.lan", "is not a public DNS name"),
    # Private ranges (RFC 1918, RFC 6598, RFC 4193): SPF and A records of them reach nobody.
    ("public_ipv4", "10.0.0.5", "cannot be reached from other machines"),
    ("public_ipv4", "172.31.5.6", "cannot be reached from other machines"),
    ("public_ipv4", "192.168.1.10", "cannot be reached from other machines"),
    ("public_ipv4", "100.64.0.1", "cannot be reached from other machines"),
    ("public_ipv6", "fd12:3456::1", "cannot be reached from other machines"),
    ("public_ipv4", "127.0.0.1", "cannot be reached from other machines"),
    ("public_ipv6", "::1", "cannot be reached from other machines"),
    ("public_ipv4", "2001:db8::1", "is not an IPv4 address"),
])
def test_setup_refuses_what_cannot_be_published(fresh, field, value, message):
    response = fresh.post(reverse("mailhost:setup"), {**SETUP_POST, field: value})
    assert response.status_code == 400
    assert message in text(response)
    assert MailHost.current().mail_hostname == "localhost"


def test_setup_asks_for_at_least_one_address(fresh):
    response = fresh.post(reverse("mailhost:setup"),
                          {**SETUP_POST, "public_ipv4": "", "public_ipv6": ""})
    assert response.status_code == 400 and "at least one public address" in text(response)


@FUZZ
@given(field=st.sampled_from(sorted(SETUP_POST)), value=TEXT)
def test_setup_takes_hostile_text(fresh, field, value):
    before = counts()
    check(fresh.post(reverse("mailhost:setup"), {**SETUP_POST, field: value}), before)


# ---------------------------------------------------------------- never advise localhost


@pytest.fixture
def served(world, settings):
    settings.ALLOWED_HOSTS = ["testserver", "panel.example.org", "localhost", "127.0.0.1"]
    change_host(**FRESH)
    return world


def test_autoconfig_is_not_served_while_the_name_is_the_default(served):
    answer = Client().get("/mail/config-v1.1.xml", {"emailaddress": "bob@a.example"})
    assert answer.status_code == 404 and b"localhost" not in answer.content
    change_host(**SET_UP)
    answer = Client().get("/mail/config-v1.1.xml", {"emailaddress": "bob@a.example"})
    assert answer.status_code == 200 and b"mail.example.org" in answer.content


def test_autodiscover_is_not_served_while_the_name_is_the_default(served):
    answer = Client().get("/autodiscover/autodiscover.xml", {"emailaddress": "bob@a.example"})
    assert answer.status_code == 404


def test_pages_say_to_set_the_name_instead_of_localhost(served):
    root = served.client_for("superadmin")
    sheet = text(root.get(reverse("clientsetup:welcome", args=["bob@a.example"])))
    assert "set the mail host name first" in sheet and "<code>localhost</code>" not in sheet
    records = text(root.get(reverse("clientsetup:records", args=["a.example"]),
                            HTTP_HOST="panel.example.org"))
    assert "Set the mail host name first" in records
    assert "SRV" not in records.split('id="client-records"')[1].split("</pre>")[0]
    connect = text(served.client_for("mailbox").get(reverse("clientsetup:connect")))
    assert "set the mail host name first" in connect and "<code>localhost</code>" not in connect


def test_the_zone_names_no_localhost_and_says_what_to_do(served):
    page = text(served.client_for("superadmin").get(
        reverse("domains:domain-detail", args=["a.example"]), HTTP_HOST="panel.example.org"))
    zone = page.split('id="zone-text"')[1].split("</pre>")[0]
    # Comments may say why a record is missing; no record names the machine.
    assert not [line for line in zone.splitlines()
                if "localhost" in line and not line.startswith(";")]
    assert "Set the public name of this server" in page
    assert "Set the mail host name first" in page
    assert "autoconfig.a.example. 3600 IN CNAME panel.example.org." in zone


@pytest.mark.parametrize("panel_host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000",
                                        "localhost"])
def test_no_autoconfig_record_points_at_a_loopback_panel(served, panel_host):
    change_host(**SET_UP)
    records = client_setup.dns_records("a.example", panel_host=panel_host)
    assert not [r for r in records if "autoconfig" in r or "autodiscover" in r]
    assert any(r.startswith("_submission._tcp.a.example.") for r in records)
    warnings = client_setup.dns_warnings(panel_host=panel_host)
    assert len(warnings) == 1 and "other machines cannot reach" in warnings[0]


def test_a_public_panel_and_host_need_no_warning(served):
    change_host(**SET_UP)
    assert client_setup.dns_warnings(panel_host="panel.example.org") == []
    assert client_setup.dns_warnings(panel_host="192.0.2.7:443") == []


@pytest.mark.parametrize("panel_host", ["localhost:8000", "127.0.0.1", "[::1]:8000"])
def test_the_welcome_sheet_gives_no_loopback_panel_address(served, settings, panel_host):
    # The defaults allow only loopback names (MAILADMIN_ALLOWED_HOSTS): a fresh
    # install's admin prints the sheet from http://localhost:8000, and its reader
    # is elsewhere.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "[::1]"]
    change_host(**SET_UP)
    sheet = text(served.client_for("admin_a").get(
        reverse("clientsetup:welcome", args=["bob@a.example"]), HTTP_HOST=panel_host))
    assert f"://{panel_host}" not in sheet
    assert f"<code>{reverse('accounts:password')}</code>" in sheet
    assert "ask your administrator" in sheet


def test_the_welcome_sheet_gives_a_public_panel_address(served):
    change_host(**SET_UP)
    sheet = text(served.client_for("admin_a").get(
        reverse("clientsetup:welcome", args=["bob@a.example"]), HTTP_HOST="panel.example.org"))
    assert f"<code>http://panel.example.org{reverse('accounts:password')}</code>" in sheet


def test_a_cloud_machine_name_is_no_default_to_give_out(served):
    # An EC2 instance's getfqdn(): the embedded default there, as localhost elsewhere.
    change_host(**{**SET_UP, "mail_hostname": "ip-172-31-5-6.eu-west-1.compute.internal"})
    assert not MailHost.current().has_public_name
    answer = Client().get("/mail/config-v1.1.xml", {"emailaddress": "bob@a.example"})
    assert answer.status_code == 404
    assert not client_setup.dns_records("a.example", panel_host="10.0.0.5")


def test_a_new_name_says_where_host_work_now_queues(fresh, settings):
    # Host operations go to the queue host.<mail hostname>; the agent consumes the
    # queue it was started with (MAILADMIN_AGENT_QUEUE, `-Q host.$(hostname -f)`).
    settings.CELERY_TASK_ALWAYS_EAGER = False
    page = text(fresh.post(reverse("mailhost:setup"), SETUP_POST, follow=True))
    assert "host.mail.example.org" in page and "MAILADMIN_AGENT_QUEUE" in page
    # The same name again moves nothing: no warning.
    page = text(fresh.post(reverse("mailhost:setup"), SETUP_POST, follow=True))
    assert "MAILADMIN_AGENT_QUEUE" not in page


def test_without_a_broker_host_work_runs_inline_and_nothing_moves(fresh, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    page = text(fresh.post(reverse("mailhost:setup"), SETUP_POST, follow=True))
    assert "MAILADMIN_AGENT_QUEUE" not in page
