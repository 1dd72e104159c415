"""The DKIM publish check against real Knot zones: it asks the domains' authoritative
servers (found through Unbound, asked directly) and moves keys only as DNS allows.

The zones are written here: each names a server with an address (ns, on
loopback, where Knot listens) beside the harness's address-less one, and
Knot answers on its own port (MAILADMIN_DNS_AUTHORITATIVE_PORT).
"""

from __future__ import annotations

import datetime
import io
import time
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse

from core.models import AuditEntry
from dkim import publish, selectors
from dkim.models import DkimKey
from domains import services as domain_services
from tests.integration.dnsserver import DkimKeys, DnsServers, dns_servers, txt

pytestmark = pytest.mark.daemons

SELECTOR = "s20261202a"
TTL = 2  # seconds: the record's own TTL, so "seen for its TTL" is a short wait
KEYS = DkimKeys.generate()
OURS, STRANGER = KEYS.ours, KEYS.stranger


def zone(*records: str) -> list[str]:
    return ["@ NS ns", "ns A 127.0.0.1", *records]


def dkim_record(public_key: str, name: str = f"{SELECTOR}._domainkey") -> str:
    return f"{name} {TTL} {txt(f'v=DKIM1; k=rsa; p={public_key}')}"


ZONES = {
    "right.test": zone(dkim_record(OURS)),
    "wrong.test": zone(dkim_record(STRANGER)),
    "absent.test": zone(),
    "revoked.test": zone(dkim_record("")),
    "not-revoked.test": zone(dkim_record(OURS)),
    # A server with an address nothing listens on beside one where Knot does.
    "two-addresses.test": ["@ NS ns", "ns A 127.0.0.2", "ns A 127.0.0.1", dkim_record(OURS)],
    # mail.parent.test has no zone of its own: its records are in parent.test's.
    "parent.test": zone(dkim_record(OURS, f"{SELECTOR}._domainkey.mail")),
}


@pytest.fixture(scope="module")
def servers() -> Iterator[DnsServers]:
    with dns_servers(ZONES, keys=KEYS) as running:
        yield running


@pytest.fixture
def dns_settings(servers, transactional_db):
    with override_settings(**servers.overrides,
                           MAILADMIN_DNS_AUTHORITATIVE_PORT=servers.knot_port):
        yield servers


def key_of(name: str, state: str = DkimKey.State.PENDING, **fields: object) -> DkimKey:
    domain = domain_services.create_domain(actor="t", name=name)
    return DkimKey.objects.create(domain=domain, selector=SELECTOR, algorithm="rsa", bits=2048,
                                  public_key=OURS, state=state, **fields)


def check() -> None:
    publish.check_keys(selectors.keys_to_check(), actor="t")


def test_a_key_is_published_once_every_server_has_shown_it_for_its_ttl(dns_settings):
    key = key_of("right.test")
    below = key_of("mail.parent.test")
    check()
    key.refresh_from_db()
    below.refresh_from_db()
    for row in (key, below):
        assert row.state == "pending"
        assert row.published_seen_at is not None
        assert row.ttl_seen == TTL
    time.sleep(TTL + 0.2)
    check()
    key.refresh_from_db()
    below.refresh_from_db()
    assert (key.state, below.state) == ("published", "published")
    assert key.published - key.published_seen_at >= datetime.timedelta(seconds=TTL)
    actions = list(AuditEntry.objects.filter(object_id=key.pk, object_type="dkimkey")
                   .values_list("action", flat=True).order_by("pk"))
    assert actions == ["dkim.seen", "dkim.published"]


def test_a_server_is_heard_on_any_of_its_addresses(dns_settings):
    key = key_of("two-addresses.test")
    check()
    key.refresh_from_db()
    assert (key.published_seen_at is not None, key.problem.startswith("Seen in DNS")) == (
        True, True)


def test_a_wrong_or_missing_record_keeps_the_key_pending_and_says_why(dns_settings):
    wrong, absent = key_of("wrong.test"), key_of("absent.test")
    check()
    time.sleep(TTL + 0.2)
    check()
    wrong.refresh_from_db()
    absent.refresh_from_db()
    assert (wrong.state, wrong.published_seen_at) == ("pending", None)
    assert wrong.problem.startswith(f"Wrong record at {SELECTOR}._domainkey.wrong.test: "
                                    "ns.wrong.test (127.0.0.1) shows another key")
    assert absent.state == "pending"
    assert absent.problem.startswith(f"Not published yet at {SELECTOR}._domainkey.absent.test: "
                                     "ns.absent.test (127.0.0.1) shows no DKIM record")


def test_a_revoked_key_goes_once_dns_shows_p_empty(dns_settings):
    revoked = key_of("revoked.test", DkimKey.State.REVOKED, external=True)
    still = key_of("not-revoked.test", DkimKey.State.REVOKED, external=True)
    check()
    revoked.refresh_from_db()
    still.refresh_from_db()
    assert (revoked.state, revoked.removed is not None) == ("gone", True)
    assert still.state == "revoked"
    assert still.problem.startswith("Publish the revoked form (p= empty)")


def test_the_command_checks_and_reports(dns_settings):
    key_of("wrong.test")
    out = io.StringIO()
    call_command("dkim", "check-published", "wrong.test", stdout=out)
    assert f"{SELECTOR}._domainkey.wrong.test pending: mismatch: Wrong record" in out.getvalue()
    out = io.StringIO()
    call_command("dkim", "show", "wrong.test", stdout=out)
    assert "status: Wrong record" in out.getvalue()
    assert f"value: v=DKIM1; k=rsa; p={OURS}" in out.getvalue()


def test_a_server_that_does_not_answer_confirms_nothing(dns_settings):
    key = key_of("right.test")
    with override_settings(MAILADMIN_DNS_AUTHORITATIVE_PORT=9, MAILADMIN_DNS_TIMEOUT=0.2,
                           MAILADMIN_DNS_TRIES=1):
        check()
    key.refresh_from_db()
    assert (key.state, key.published_seen_at) == ("pending", None)
    assert key.problem.startswith("Not confirmed: ns.right.test (127.0.0.1) did not answer")


def test_the_pages_button_asks_dns_now(dns_settings, world):
    key = key_of("right.test")
    client = world.client_for("superadmin")
    response = client.post(reverse("dkim:check", args=["right.test"]))
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.published_seen_at is not None
    # Another domain's admin gets 404, and nothing is asked.
    assert world.client_for("admin_b").post(
        reverse("dkim:check", args=["right.test"])).status_code == 404
