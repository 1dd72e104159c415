"""What the searches find: prefixes of addresses, domain names and display names."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from domains import passwords, search, services

pytestmark = pytest.mark.django_db


def found(client: Any, name: str, params: dict[str, str], *args: str) -> list[str]:
    response = client.get(reverse(name, args=args), params)
    assert response.status_code == 200
    key = {"domains:mailbox-list": "mailboxes", "domains:domain-list": "domains",
           "domains:alias-list": "aliases"}[name]
    return [str(row) for row in response.context[key]]


def add_mailboxes(*emails: str, name: str = "") -> None:
    stored = passwords.hash_password("search test password")
    for email in emails:
        services.create_mailbox(actor="t", email=email, password_hash=stored, name=name)


def test_it_normalises_a_typed_term_as_addresses_are_stored():
    assert search.address_term("  Anna@MÜNCHEN.Example ") == "anna@xn--mnchen-3ya.example"
    assert search.address_term("anna@münchen") == "anna@xn--mnchen-3ya"
    assert search.address_term("ANNA") == "anna"
    assert search.domain_term("Bücher。Example") == "xn--bcher-kva.example"
    assert search.domain_term("bücher.") == "xn--bcher-kva."
    # A label IDNA refuses stays as typed and matches nothing.
    assert search.domain_term("a\u2028b") == "a\u2028b"
    assert search.name_term(" Émile ZOLA") == "Émile zola"


def test_it_finds_addresses_in_any_case_and_by_their_unicode_domain(world):
    services.create_domain(actor="t", name="münchen.example")
    add_mailboxes("anna@xn--mnchen-3ya.example", "anton@xn--mnchen-3ya.example")
    client = world.client_for("superadmin")
    for typed in ("ANNA", "anna@München.example", "Anna@xn--mnchen-3ya", "anna@münchen"):
        assert found(client, "domains:mailbox-list", {"q": typed}) == [
            "anna@xn--mnchen-3ya.example"], typed
    assert found(client, "domains:mailbox-list", {"q": "an"}) == [
        "anna@xn--mnchen-3ya.example", "anton@xn--mnchen-3ya.example"]
    assert found(client, "domains:domain-list", {"q": "MÜNCHEN"}) == ["xn--mnchen-3ya.example"]
    assert found(client, "domains:domain-list", {"q": "xn--m"}) == ["xn--mnchen-3ya.example"]


def test_it_takes_underscore_and_percent_literally(world):
    add_mailboxes("a_b@a.example", "axb@a.example", "a-b@b.example")
    services.create_alias(actor="t", source="in_fo@a.example", destinations="bob@a.example",
                          checked_domains=None)
    client = world.client_for("superadmin")
    assert found(client, "domains:mailbox-list", {"q": "a_"}) == ["a_b@a.example"]
    assert found(client, "domains:mailbox-list", {"q": "a%"}) == []
    assert found(client, "domains:mailbox-list", {"q": "%"}) == []
    assert found(client, "domains:mailbox-list", {"q": "_"}) == []
    assert found(client, "domains:domain-list", {"q": "_"}) == []
    assert found(client, "domains:alias-list", {"q": "in_"}, "a.example") == ["in_fo@a.example"]
    assert found(client, "domains:alias-list", {"q": "INF"}, "a.example") == ["info@a.example"]


def test_it_lists_address_matches_then_name_matches_across_pages(world):
    services.create_domain(actor="t", name="c.example", max_mailboxes=0)
    add_mailboxes(*[f"ann{n:02}@c.example" for n in range(53)])
    add_mailboxes(*[f"x{n:02}@c.example" for n in range(60)], name="Annabel")
    add_mailboxes("annz@b.example", name="Annabel")  # both: listed once, by address
    client = world.client_for("superadmin")
    url = reverse("domains:mailbox-list")

    pages = [client.get(url, {"q": "ANN", "page": str(n)}) for n in (1, 2, 3, 4)]
    rows = [[str(m) for m in page.context["mailboxes"]] for page in pages]
    assert rows[0] == [f"ann{n:02}@c.example" for n in range(50)]
    assert rows[1] == ([f"ann{n:02}@c.example" for n in range(50, 53)] + ["annz@b.example"]
                       + [f"x{n:02}@c.example" for n in range(46)])
    assert rows[2] == [f"x{n:02}@c.example" for n in range(46, 60)]
    assert rows[3] == []
    assert [p.context["has_next"] for p in pages] == [True, True, False, False]


def test_it_searches_names_without_case_and_only_within_reach(world):
    services.update_mailbox(actor="t", mailbox=world.bob, name="Robert Smith")
    client = world.client_for("superadmin")
    assert found(client, "domains:mailbox-list", {"q": "ROBERT s"}) == ["bob@a.example"]
    assert found(client, "domains:mailbox-list", {"q": "smith"}) == []
    assert found(world.client_for("admin_b"), "domains:mailbox-list", {"q": "robert"}) == []
    assert found(world.client_for("admin_a"), "domains:mailbox-list", {"q": "robert"}) == [
        "bob@a.example"]
