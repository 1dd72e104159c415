"""Every URL pattern of the project, as each persona that exists so far."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import get_resolver

from domains import services

EXPECTED = {
    # name: (anonymous, signed-in admin)
    "home": (302, 200),
    "login": (200, 200),
    "logout": (405, 405),  # GET is refused: signing out is a POST with CSRF
}


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root-admin", password="x" * 16)
    client.force_login(user)
    return client


def test_every_url_pattern_has_an_expectation():
    names = {p.name for p in get_resolver().url_patterns if getattr(p, "name", None)}
    assert names == set(EXPECTED)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_anonymous_answers(client, name):
    from django.urls import reverse

    response = client.get(reverse(name))
    assert response.status_code == EXPECTED[name][0]
    if response.status_code == 302:
        assert response["Location"].startswith("/login/")


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_admin_answers(admin_client, name):
    from django.urls import reverse

    assert admin_client.get(reverse(name)).status_code == EXPECTED[name][1]


@pytest.mark.django_db
def test_home_shows_the_counts(admin_client):
    services.create_domain(actor="t", name="example.org")
    services.create_mailbox(actor="t", email="bob@example.org", password="correct horse 1")
    body = admin_client.get("/").content.decode()
    assert "<dt>Domains</dt><dd>1</dd>" in body
    assert "<dt>Mailboxes</dt><dd>1</dd>" in body


@pytest.mark.django_db
def test_sign_out_is_a_post(admin_client):
    response = admin_client.post("/logout/")
    assert response.status_code == 302
    assert admin_client.get("/").status_code == 302
