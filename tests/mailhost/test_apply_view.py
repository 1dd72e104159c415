"""The Mail host page's "Check configuration" button and the history under it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from mailhost import apply
from mailhost.models import ConfigApply, MailHost

URL = "/mail-host/check/"
PAGE = "/mail-host/"


def test_it_is_the_named_url():
    assert reverse("mailhost:config-check") == URL


def test_a_superadmin_checks_and_sees_the_history(world, live, checkers,
                                                  django_capture_on_commit_callbacks):
    client = world.client_for("superadmin")
    checkers.results = [apply.CheckerResult("postconf", "postconf -c S -n", 0,
                                            "postconf: warning: <unused>\n")]

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL)

    assert response.status_code == 302 and response["Location"] == PAGE
    done = ConfigApply.objects.get()
    assert (done.state, done.outcome, done.requested_by) == ("done", "would_change",
                                                             "root@admin.test")
    page = client.get(PAGE)
    html = page.content.decode()
    assert page.status_code == 200
    # The test's transaction sends the task only after the view answered; outside
    # a test the inline run ends inside request_apply and the message gives the outcome.
    assert "The check is queued on the host&#x27;s agent" in html
    assert "Would change" in html
    assert f'action="{URL}"' in html and "Check configuration" in html
    assert "postfix/main.cf (added," in html
    assert "postconf: warning: &lt;unused&gt;" in html  # escaped
    assert "<script" not in html.split("</head>")[1] and "style=" not in html


def test_the_history_shows_the_latest_20(world, live):
    host = MailHost.current()
    for n in range(25):
        ConfigApply.objects.create(host=host, requested_by=f"user{n}", state="done",
                                   outcome="nothing")

    html = world.client_for("superadmin").get(PAGE).content.decode()

    assert ">user24 (check)" in html and ">user5 (check)" in html
    assert ">user4 (check)" not in html


def test_a_check_while_one_is_open_is_refused_with_a_message(world, live, checkers):
    client = world.client_for("superadmin")
    client.post(URL)  # queued: its on-commit send never runs inside the test's transaction

    response = client.post(URL, follow=True)

    assert "already queued or running" in response.content.decode()
    assert ConfigApply.objects.count() == 1


@pytest.mark.parametrize("persona", ["admin_a", "admin_b", "mailbox"])
def test_it_is_not_found_for_anyone_else(world, live, checkers, persona):
    client = world.client_for(persona)

    assert client.post(URL).status_code == 404
    assert client.get(URL).status_code == 404
    assert not ConfigApply.objects.exists()


def test_get_is_not_allowed(world):
    assert world.client_for("superadmin").get(URL).status_code == 405
