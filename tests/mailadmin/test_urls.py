"""Every URL pattern of the project, walked as every persona.

Objects of another domain are 404, admin pages are 404 to mailbox users,
superadmin pages are 404 to domain admins, anonymous users go to sign in.
A new URL pattern without a row here fails test_every_pattern_is_walked.
"""

import importlib
from pathlib import Path

import pytest
from django.conf import settings
from django.http import HttpRequest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

PERSONAS = ["anonymous", "superadmin", "admin_a", "admin_b", "mailbox"]
LOGIN = "login"

# url name, args -> expected GET status per persona, in PERSONAS order.
EXPECTED = {
    ("home", ()): (LOGIN, 200, 200, 200, 302),
    ("login", ()): (200, 302, 302, 302, 302),
    ("logout", ()): (405, 405, 405, 405, 405),
    ("accounts:me", ()): (LOGIN, 404, 404, 404, 200),
    ("accounts:password", ()): (LOGIN, 404, 404, 404, 200),
    ("accounts:password-hint", ()): (LOGIN, 404, 404, 404, 405),
    ("domains:domain-list", ()): (LOGIN, 200, 200, 200, 404),
    ("domains:domain-create", ()): (LOGIN, 200, 404, 404, 404),
    ("domains:domain-detail", ("a.example",)): (LOGIN, 200, 200, 404, 404),
    ("domains:domain-edit", ("a.example",)): (LOGIN, 200, 404, 404, 404),
    ("domains:domain-delete", ("a.example",)): (LOGIN, 200, 404, 404, 404),
    ("domains:mailbox-create", ("a.example",)): (LOGIN, 200, 200, 404, 404),
    ("domains:mailbox-check", ("a.example",)): (LOGIN, 200, 200, 404, 404),
    ("domains:mailbox-list", ()): (LOGIN, 200, 200, 200, 404),
    ("domains:mailbox-edit", ("bob@a.example",)): (LOGIN, 200, 200, 404, 404),
    ("domains:mailbox-delete", ("bob@a.example",)): (LOGIN, 200, 200, 404, 404),
}


def _merge_feature_rows() -> None:
    """Rows for each feature's URLs live beside its tests: tests/*/expected_urls_*.py."""
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.glob("*/expected_urls_*.py")):
        module = importlib.import_module(f"tests.{path.parent.name}.{path.stem}")
        EXPECTED.update(module.EXPECTED)


_merge_feature_rows()


def all_pattern_names(resolver=None, prefix="") -> set[str]:
    names = set()
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            space = f"{prefix}{pattern.namespace}:" if pattern.namespace else prefix
            names |= all_pattern_names(pattern, space)
        elif isinstance(pattern, URLPattern) and pattern.name:
            names.add(prefix + pattern.name)
    return names


def test_every_pattern_is_walked():
    assert {name for name, _ in EXPECTED} == all_pattern_names()


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_walk(world, persona):
    client = world.client_for(persona)
    column = PERSONAS.index(persona)
    failures = []
    for (name, args), answers in EXPECTED.items():
        url = reverse(name, args=args)
        response = client.get(url)
        expected = answers[column]
        if expected == LOGIN:
            ok = response.status_code == 302 and response["Location"].startswith("/login/")
        else:
            ok = response.status_code == expected
        if not ok:
            failures.append(f"{persona} GET {url}: {response.status_code}, expected {expected}")
        if response.get("Content-Security-Policy") != settings.CONTENT_SECURITY_POLICY:
            failures.append(f"{persona} GET {url}: no Content-Security-Policy")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("persona", ["admin_b", "mailbox", "anonymous"])
def test_writes_outside_reach_change_nothing(world, persona):
    from domains.models import Domain, Mailbox

    client = world.client_for(persona)
    posts = [
        (reverse("domains:mailbox-delete", args=["bob@a.example"]), {}),
        (reverse("domains:mailbox-edit", args=["bob@a.example"]),
         {"name": "x", "quota": "0", "password": "hijacked password 1"}),
        (reverse("domains:mailbox-create", args=["a.example"]),
         {"local_part": "intruder", "password": "p" * 14, "password_again": "p" * 14}),
        (reverse("domains:domain-delete", args=["a.example"]), {"force": "on"}),
    ]
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code in (302, 404), url
        if response.status_code == 302:
            assert response["Location"].startswith("/login/")
    assert Mailbox.objects.filter(email="bob@a.example", name="").exists()
    assert not Mailbox.objects.filter(email="intruder@a.example").exists()
    assert Domain.objects.filter(name="a.example").exists()


def test_a_mailbox_password_never_opens_an_admin_session(world):
    """alice@a.example is an admin; a mailbox of the same address signs in as a mailbox."""
    from domains import services

    services.create_mailbox(actor="t", email="alice@a.example",
                            password="mailbox password 99")
    client = world.client_for("anonymous")
    assert client.login(request=HttpRequest(), username="alice@a.example",
                        password="mailbox password 99")
    assert client.get(reverse("domains:domain-list")).status_code == 404
    assert client.get(reverse("accounts:me")).status_code == 200
