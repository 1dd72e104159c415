"""A generated password reaches the welcome sheet once, and nowhere else.

Never in a URL, never readable in the session table, never in the audit log
or the logs; the second opening of the sheet, a later password change, a
late opening or another admin's session shows no password.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse

from core.models import AuditEntry
from domains import handover
from domains.models import Mailbox

WELCOME_DEFAULT = "the one your administrator gave you"


def generated_of(response: Any) -> str:
    found = re.search(r'<code class="secret" id="generated-password">([^<]+)</code>',
                      response.content.decode())
    assert found, "no generated password shown"
    return found.group(1)


def sheet(client: Any, email: str) -> str:
    response = client.get(reverse("clientsetup:welcome", args=[email]))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    return response.content.decode()


def create_with_generated(client: Any, local: str = "dave") -> tuple[str, Any]:
    response = client.post(reverse("domains:mailbox-create", args=["a.example"]), {
        "local_part": local, "name": "", "quota": "", "password": "", "password_again": ""})
    assert response.status_code == 200
    return generated_of(response), response


def everything_stored_and_logged(caplog: Any) -> str:
    audit = " ".join(str(row) for row in AuditEntry.objects.values_list())
    sessions = " ".join(Session.objects.values_list("session_data", flat=True))
    decoded = " ".join(str(s.get_decoded()) for s in Session.objects.all())
    return " ".join([audit, sessions, decoded, caplog.text])


def test_the_sheet_shows_the_generated_password_once(world, caplog):
    caplog.set_level(logging.DEBUG)
    client = world.client_for("admin_a")
    password, response = create_with_generated(client)
    page = response.content.decode()
    welcome_url = reverse("clientsetup:welcome", args=["dave@a.example"])
    assert f'href="{welcome_url}"' in page and password not in welcome_url
    assert 'data-copy="generated-password"' in page
    # Sealed in the admin's session until the sheet is opened: never readable there.
    assert password not in everything_stored_and_logged(caplog)

    first = sheet(client, "dave@a.example")
    assert password in first and 'data-copy="welcome-password"' in first
    assert "js/copy.js" in first and WELCOME_DEFAULT not in first
    second = sheet(client, "dave@a.example")
    assert password not in second and WELCOME_DEFAULT in second
    assert password not in everything_stored_and_logged(caplog)


def test_another_admin_never_sees_it(world):
    password, _ = create_with_generated(world.client_for("admin_a"))
    other = world.client_for("superadmin")
    assert password not in sheet(other, "dave@a.example")


def test_a_reset_to_a_generated_password_reaches_the_sheet(world, caplog):
    client = world.client_for("admin_a")
    response = client.post(reverse("domains:mailbox-edit", args=["bob@a.example"]), {
        "name": "", "quota": "0", "active": "on", "password": "", "generate": "on"})
    password = generated_of(response)
    assert password in sheet(client, "bob@a.example")
    assert password not in sheet(client, "bob@a.example")
    assert password not in everything_stored_and_logged(caplog)


def test_a_later_password_change_makes_the_offered_one_stale(world):
    client = world.client_for("admin_a")
    password, _ = create_with_generated(client)
    from domains import services
    services.set_mailbox_password(actor="t", mailbox=Mailbox.objects.get(email="dave@a.example"),
                                  password="another fine password 7")
    assert password not in sheet(client, "dave@a.example")


def test_a_late_opening_shows_no_password(world, monkeypatch):
    client = world.client_for("admin_a")
    password, _ = create_with_generated(client)
    later = time.time() + handover.PASSWORD_SHEET_MINUTES * 60 + 1
    monkeypatch.setattr(handover.time, "time", lambda: later)
    assert password not in sheet(client, "dave@a.example")


def test_opening_one_sheet_keeps_the_other_waiting(world):
    client = world.client_for("admin_a")
    first, _ = create_with_generated(client, "dave")
    second, _ = create_with_generated(client, "erin")
    assert first in sheet(client, "dave@a.example")
    assert second in sheet(client, "erin@a.example")


@pytest.mark.parametrize("hostile", ["'; DROP TABLE x; --", "<script>", "\x00", "a" * 3000])
def test_a_hostile_sheet_address_is_a_404(world, hostile):
    client = world.client_for("admin_a")
    response = client.get(f"/mailboxes/{hostile}/welcome/")
    assert response.status_code == 404
