"""App-password usage: the lines the login check writes, read strictly; the
newest use kept; applying them twice changes nothing; the page shows them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from apppasswords import services, usage
from apppasswords.models import AppPassword
from core.actor import Actor


def test_a_line_gives_the_id_address_service_and_time():
    pk, use = usage.parse_line("12 192.0.2.7 imap 1800000000")
    assert (pk, use.ip, use.service) == (12, "192.0.2.7", "imap")
    assert use.when == datetime.fromtimestamp(1800000000, UTC)
    # Postfix's SMTP AUTH asks as smtp, Dovecot's submission service as submission.
    assert usage.parse_line("3 2001:db8::1 submission 1800000000")[1].service == "smtp"
    assert usage.parse_line("3 2001:DB8::1 sieve 1800000000")[1].ip == "2001:db8::1"
    assert usage.parse_line("3 - imap 1800000000")[1].ip is None


@pytest.mark.parametrize("line", [
    "", "12 192.0.2.7 imap", "12 192.0.2.7 imap 1800000000 extra", "x 192.0.2.7 imap 1800000000",
    "0 192.0.2.7 imap 1800000000", "-1 192.0.2.7 imap 1800000000",
    "1234567890123456789 192.0.2.7 imap 1800000000", "12 192.0.2.777 imap 1800000000",
    "12 example.org imap 1800000000", "12 192.0.2.7 pop3 1800000000",
    "12 192.0.2.7 IMAP 1800000000", "12 192.0.2.7 imap 99", "12 192.0.2.7 imap 9999999999",
    "12 192.0.2.7 imap 1.8e9", "١٢ 192.0.2.7 imap 1800000000", "12 192.0.2.7 imap ١٨٠٠٠٠٠٠٠٠",
    "12 \ufffd\ufffd imap 1800000000",
])
def test_a_line_not_as_the_login_check_writes_it_is_skipped(line):
    assert usage.parse_line(line) is None


def test_the_newest_use_of_each_app_password_wins_whatever_the_order():
    parsed = usage.parse(["1 192.0.2.1 imap 1800000100", "1 192.0.2.2 smtp 1800000000",
                          "bad line", "", "2 192.0.2.3 sieve 1800000050",
                          "1 192.0.2.4 imap 1800000100"])
    assert (parsed.lines, parsed.skipped) == (5, 1)
    assert parsed.newest[1].ip == "192.0.2.4"  # a tie: the later line
    assert parsed.newest[2].service == "sieve"


@pytest.mark.django_db
def test_applying_is_idempotent_and_never_goes_back_in_time(world):
    row = services.create_app_password(actor=Actor.cli(), mailbox=world.bob, name="Phone",
                                       protocols=["imap"]).app_password
    newer = usage.parse([f"{row.pk} 192.0.2.7 imap 1800000100", "987654 192.0.2.1 imap 1800000000"])
    assert services.apply_app_password_usage(parsed=newer) == 1
    assert services.apply_app_password_usage(parsed=newer) == 0
    older = usage.parse([f"{row.pk} 192.0.2.9 smtp 1800000000"])
    assert services.apply_app_password_usage(parsed=older) == 0
    row.refresh_from_db()
    assert (row.last_ip, row.last_service, int(row.last_used.timestamp())) == (
        "192.0.2.7", "imap", 1800000100)


@pytest.mark.django_db
def test_the_page_shows_when_where_and_which_service_or_never(world, settings):
    phone = services.create_app_password(actor=Actor.cli(), mailbox=world.bob, name="Phone",
                                         protocols=["imap"]).app_password
    services.create_app_password(actor=Actor.cli(), mailbox=world.bob, name="Desk",
                                 protocols=["smtp"])
    AppPassword.objects.filter(pk=phone.pk).update(
        last_used=datetime.now(UTC), last_ip="192.0.2.7", last_service="imap")
    settings.MAILADMIN_DOVECOT_AUTH_CACHE_TTL = "1 hour"
    client = world.client_for("mailbox")
    text = client.get(reverse("apppasswords:own")).content.decode()
    assert "Last used 0\xa0minutes ago from 192.0.2.7 (IMAP)" in text
    assert "Never used" in text and "within 1 hour" in text
    settings.MAILADMIN_DOVECOT_LOGIN_CACHE = ""
    text = client.get(reverse("apppasswords:own")).content.decode()
    assert "not recorded on this server" in text
