"""The alias and alias-domain pages, as a domain admin would use them."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from domains import services
from domains.models import Alias, AliasDomain


def shows(response, message: str) -> bool:
    return escape(message) in response.content.decode()


@pytest.fixture
def alice(world):
    return world.client_for("admin_a")


def create(client, data, domain="a.example"):
    return client.post(reverse("domains:alias-create", args=[domain]), data)


def edit(client, source, data):
    return client.post(reverse("domains:alias-edit", args=[source]), data)


# ---------------------------------------------------------------- aliases


def test_create_edit_disable_delete_an_alias(world, alice):
    page = alice.get(reverse("domains:alias-create", args=["a.example"]))
    assert page.status_code == 200
    assert '<label for="id_local_part">' in page.content.decode()
    assert '<label for="id_destinations">' in page.content.decode()

    response = create(alice, {"local_part": "Team",
                              "destinations": "bob@a.example\r\nFriend@elsewhere.example\r\n"})
    assert response.status_code == 302
    assert response["Location"] == reverse("domains:alias-list", args=["a.example"])
    alias = Alias.objects.get(source="team@a.example")
    assert alias.destination_list == ["bob@a.example", "friend@elsewhere.example"]
    assert alias.active and alias.domain == world.a

    # Edit: comma-separated this time, one of them another alias.
    assert alice.get(reverse("domains:alias-edit", args=["team@a.example"])).status_code == 200
    response = edit(alice, "team@a.example",
                    {"destinations": "info@a.example, x@elsewhere.example", "active": "on"})
    assert response.status_code == 302
    alias = Alias.objects.get(source="team@a.example")
    assert alias.destination_list == ["info@a.example", "x@elsewhere.example"]
    assert alias.active

    # Disable: an unchecked box is not sent.
    response = edit(alice, "team@a.example", {"destinations": "info@a.example"})
    assert response.status_code == 302
    alias = Alias.objects.get(source="team@a.example")
    assert not alias.active
    assert alias.destinations == "info@a.example"

    # Delete goes through a confirmation page, then a POST.
    page = alice.get(reverse("domains:alias-delete", args=["team@a.example"]))
    assert page.status_code == 200
    assert 'method="post"' in page.content.decode()
    assert Alias.objects.filter(source="team@a.example").exists()
    response = alice.post(reverse("domains:alias-delete", args=["team@a.example"]))
    assert response.status_code == 302
    assert not Alias.objects.filter(source="team@a.example").exists()
    assert Alias.objects.filter(source="info@a.example").exists()


def test_catch_all(world, alice):
    response = create(alice, {"kind": "catchall", "local_part": "",
                              "destinations": "bob@a.example"})
    assert response.status_code == 302
    catchall = Alias.objects.get(source="@a.example")
    assert catchall.is_catchall and catchall.destination_list == ["bob@a.example"]

    detail = alice.get(reverse("domains:domain-detail", args=["a.example"])).content.decode()
    assert f'href="{reverse("domains:alias-edit", args=["@a.example"])}"' in detail
    assert "(catch-all)" in detail

    assert edit(alice, "@a.example", {"destinations": "bob@a.example, info@a.example",
                                      "active": "on"}).status_code == 302
    assert Alias.objects.get(source="@a.example").destination_list == [
        "bob@a.example", "info@a.example"]

    second = create(alice, {"kind": "catchall", "destinations": "bob@a.example"})
    assert second.status_code == 200
    assert shows(second, "@a.example is already the catch-all.")

    assert alice.post(reverse("domains:alias-delete", args=["@a.example"])).status_code == 302
    assert not Alias.objects.filter(source="@a.example").exists()


@pytest.mark.parametrize(("data", "message"), [
    ({"local_part": "bob", "destinations": "x@elsewhere.example"},
     "bob@a.example is already a mailbox."),
    ({"local_part": "info", "destinations": "x@elsewhere.example"},
     "info@a.example is already an alias."),
    ({"local_part": "sales", "destinations": "bob@a.example\nnobody@a.example"},
     "nobody@a.example is in a domain of this server but neither a mailbox nor an alias."),
    ({"local_part": "sales", "destinations": "sales@a.example"},
     "sales@a.example cannot deliver to itself."),
    ({"local_part": "sales", "destinations": "bob"},
     "'bob' is not a mail address (local@domain)."),
    ({"local_part": "sales@a.example", "destinations": "bob@a.example"},
     "is not a valid address"),
    ({"local_part": "sales", "destinations": ""}, "This field is required."),
    ({"local_part": "sales", "destinations": " , \n"},
     "An alias needs at least one destination address."),
])
def test_create_refusals_show_the_message(world, alice, data, message):
    before = sorted(Alias.objects.values_list("source", "destinations"))
    response = create(alice, data)
    assert response.status_code == 200
    assert shows(response, message)
    assert sorted(Alias.objects.values_list("source", "destinations")) == before


def test_the_alias_limit(world, alice):
    services.update_domain(actor="t", domain=world.a, max_aliases=2)
    assert create(alice, {"local_part": "one", "destinations": "bob@a.example"}
                  ).status_code == 302
    response = create(alice, {"local_part": "two", "destinations": "bob@a.example"})
    assert response.status_code == 200
    assert shows(response, "a.example has reached its limit of 2 aliases.")
    assert not Alias.objects.filter(source="two@a.example").exists()
    assert Alias.objects.filter(domain=world.a).count() == 2


def test_edit_refusals_change_nothing(world, alice):
    response = edit(alice, "info@a.example",
                    {"destinations": "bob@a.example\nghost@a.example", "active": "on"})
    assert response.status_code == 200
    # Own domain: checked. (ghost@b.example, outside alice's reach, is taken unchecked:
    # tests/domains/test_tenant_boundary.py.)
    assert shows(response, "ghost@a.example is in a domain of this server but neither a "
                           "mailbox nor an alias.")
    response = edit(alice, "info@a.example", {"destinations": "info@a.example"})
    assert response.status_code == 200
    assert shows(response, "info@a.example cannot deliver to itself.")
    alias = Alias.objects.get(source="info@a.example")
    assert alias.destinations == "bob@a.example" and alias.active


def test_edit_form_shows_one_destination_a_line(world, alice):
    services.update_alias(actor="t", alias=Alias.objects.get(source="info@a.example"),
                          destinations="bob@a.example,x@elsewhere.example", checked_domains=None)
    page = alice.get(reverse("domains:alias-edit", args=["info@a.example"])).content.decode()
    assert "bob@a.example\nx@elsewhere.example</textarea>" in page
    assert 'name="active"' in page and "checked" in page


def test_odd_characters_in_an_address_survive_the_url(world, alice):
    source = "a#b?c&d@a.example"
    services.create_alias(actor="t", source=source, destinations="bob@a.example",
                          checked_domains=None)
    url = reverse("domains:alias-edit", args=[source])
    assert "#" not in url and "?" not in url
    listing = alice.get(reverse("domains:alias-list", args=["a.example"])).content.decode()
    assert escape(url) in listing
    assert alice.get(url).status_code == 200
    assert alice.post(reverse("domains:alias-delete", args=[source])).status_code == 302
    assert not Alias.objects.filter(source=source).exists()


def test_superadmin_manages_any_domain(world):
    client = world.client_for("superadmin")
    assert create(client, {"local_part": "post", "destinations": "carol@b.example"},
                  domain="b.example").status_code == 302
    assert Alias.objects.get(source="post@b.example").domain == world.b


@pytest.mark.parametrize("persona", ["admin_b", "mailbox", "anonymous"])
def test_aliases_outside_reach_are_404_and_posts_change_nothing(world, persona):
    services.create_alias_domain(actor="t", name="a-alias.example", target=world.a)
    client = world.client_for(persona)
    gets = [reverse("domains:alias-list", args=["a.example"]),
            reverse("domains:alias-create", args=["a.example"]),
            reverse("domains:alias-edit", args=["info@a.example"]),
            reverse("domains:alias-delete", args=["info@a.example"]),
            reverse("domains:aliasdomain-create", args=["a.example"]),
            reverse("domains:aliasdomain-edit", args=["a-alias.example"]),
            reverse("domains:aliasdomain-delete", args=["a-alias.example"])]
    posts = [
        (reverse("domains:alias-create", args=["a.example"]),
         {"local_part": "intruder", "destinations": "evil@elsewhere.example"}),
        (reverse("domains:alias-create", args=["a.example"]),
         {"local_part": "", "destinations": "evil@elsewhere.example"}),
        (reverse("domains:alias-edit", args=["info@a.example"]),
         {"destinations": "evil@elsewhere.example"}),
        (reverse("domains:alias-delete", args=["info@a.example"]), {}),
        (reverse("domains:aliasdomain-create", args=["a.example"]), {"name": "evil.example"}),
        (reverse("domains:aliasdomain-edit", args=["a-alias.example"]), {}),
        (reverse("domains:aliasdomain-delete", args=["a-alias.example"]), {}),
    ]
    for url in gets:
        response = client.get(url)
        if persona == "anonymous":
            assert response.status_code == 302 and response["Location"].startswith("/login/")
        else:
            assert response.status_code == 404, url
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code in (302, 404), url
        if response.status_code == 302:
            assert response["Location"].startswith("/login/")
    alias = Alias.objects.get(source="info@a.example")
    assert alias.destinations == "bob@a.example" and alias.active
    assert not Alias.objects.filter(source__in=["intruder@a.example", "@a.example"]).exists()
    assert AliasDomain.objects.get(name="a-alias.example").active
    assert not AliasDomain.objects.filter(name="evil.example").exists()


# ---------------------------------------------------------------- alias domains


def test_create_toggle_delete_an_alias_domain(world, alice):
    # Only a superadmin adds a domain name to the server; the domain's admin
    # then manages it.
    root = world.client_for("superadmin")
    assert alice.get(reverse("domains:aliasdomain-create", args=["a.example"])
                     ).status_code == 404
    page = root.get(reverse("domains:aliasdomain-create", args=["a.example"]))
    assert page.status_code == 200
    assert '<label for="id_name">' in page.content.decode()
    response = root.post(reverse("domains:aliasdomain-create", args=["a.example"]),
                         {"name": "A-Alias.Example"})
    assert response.status_code == 302
    assert response["Location"] == reverse("domains:domain-detail", args=["a.example"])
    alias_domain = AliasDomain.objects.get(name="a-alias.example")
    assert alias_domain.target == world.a and alias_domain.active

    detail = alice.get(reverse("domains:domain-detail", args=["a.example"])).content.decode()
    edit_url = reverse("domains:aliasdomain-edit", args=["a-alias.example"])
    delete_url = reverse("domains:aliasdomain-delete", args=["a-alias.example"])
    assert f'href="{edit_url}"' in detail and f'href="{delete_url}"' in detail

    page = alice.get(edit_url)
    assert page.status_code == 200 and 'name="active"' in page.content.decode()
    assert alice.post(edit_url, {}).status_code == 302
    assert not AliasDomain.objects.get(name="a-alias.example").active
    assert '<span class="badge badge-disabled">disabled</span>' in alice.get(
        reverse("domains:domain-detail", args=["a.example"])).content.decode()
    assert alice.post(edit_url, {"active": "on"}).status_code == 302
    assert AliasDomain.objects.get(name="a-alias.example").active

    page = alice.get(delete_url)
    assert page.status_code == 200 and 'method="post"' in page.content.decode()
    assert AliasDomain.objects.filter(name="a-alias.example").exists()
    assert alice.post(delete_url).status_code == 302
    assert not AliasDomain.objects.filter(name="a-alias.example").exists()


@pytest.mark.parametrize(("name", "message"), [
    ("a.example", "a.example cannot be an alias of itself."),
    ("b.example", "b.example is a domain with its own mailboxes; an alias domain cannot "
                  "shadow it."),
    ("taken.example", "The alias domain taken.example already exists."),
    ("not a domain", "'not a domain' is not a valid domain name."),
    ("", "This field is required."),
])
def test_alias_domain_refusals_show_the_message(world, name, message):
    services.create_alias_domain(actor="t", name="taken.example", target=world.b)
    root = world.client_for("superadmin")
    response = root.post(reverse("domains:aliasdomain-create", args=["a.example"]),
                         {"name": name})
    assert response.status_code == 200
    assert shows(response, message)
    assert list(AliasDomain.objects.values_list("name", flat=True)) == ["taken.example"]


def test_admin_b_cannot_touch_a_alias_domain_of_a(world):
    services.create_alias_domain(actor="t", name="a-alias.example", target=world.a)
    bert = world.client_for("admin_b")
    assert bert.get(reverse("domains:aliasdomain-edit", args=["a-alias.example"])
                    ).status_code == 404
    # Nor create alias domains at all: that is a superadmin's act.
    response = bert.post(reverse("domains:aliasdomain-create", args=["b.example"]),
                         {"name": "gmail.com"})
    assert response.status_code == 404
    assert not AliasDomain.objects.filter(name="gmail.com").exists()
    assert AliasDomain.objects.get(name="a-alias.example").target == world.a


# ---------------------------------------------------------------- the list


def test_detail_links_to_the_alias_pages(world, alice):
    detail = alice.get(reverse("domains:domain-detail", args=["a.example"])).content.decode()
    for url in [reverse("domains:alias-create", args=["a.example"]),
                reverse("domains:alias-list", args=["a.example"]),
                reverse("domains:alias-edit", args=["info@a.example"])]:
        assert f'href="{url}"' in detail
    assert "New alias<" in detail and "New alias domain<" not in detail
    root = world.client_for("superadmin").get(
        reverse("domains:domain-detail", args=["a.example"])).content.decode()
    assert f'href="{reverse("domains:aliasdomain-create", args=["a.example"])}"' in root


def many_aliases(world, count: int) -> None:
    for number in range(count):
        services.create_alias(actor="t", source=f"list{number:03d}@a.example",
                              destinations="bob@a.example,x@elsewhere.example",
                              checked_domains=None)


def test_search_pages_and_htmx_partial(world, alice):
    many_aliases(world, 55)
    url = reverse("domains:alias-list", args=["a.example"])
    page1 = alice.get(url)
    assert page1.status_code == 200
    assert len(page1.context["aliases"]) == 50 and page1.context["has_next"]
    body = page1.content.decode()
    assert "<html" in body and 'id="rows"' in body and "?page=2" in body
    assert 'for="q"' in body
    page2 = alice.get(url, {"page": "2"})
    assert len(page2.context["aliases"]) == 6 and not page2.context["has_next"]

    found = alice.get(url, {"q": "INF"})
    assert [a.source for a in found.context["aliases"]] == ["info@a.example"]

    partial = alice.get(url, {"q": "list05"}, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200
    body = partial.content.decode()
    assert "<html" not in body and "<table>" in body
    assert [a.source for a in partial.context["aliases"]] == [
        f"list{n:03d}@a.example" for n in range(50, 55)]
    assert "?q=list05" not in body  # one page only: no pager links

    assert alice.get(url, {"page": "x"}).status_code == 200
    assert alice.get(url, {"q": "nothing"}).context["aliases"] == []


def count_queries(client, url) -> int:
    client.get(url)  # the first request of a session may do extra work
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries.captured_queries)


def test_list_queries_do_not_grow_with_the_aliases(world, alice):
    url = reverse("domains:alias-list", args=["a.example"])
    many_aliases(world, 4)
    few = count_queries(alice, url)
    many_aliases_more = [f"more{n:03d}@a.example" for n in range(50)]
    for source in many_aliases_more:
        services.create_alias(actor="t", source=source, destinations="bob@a.example",
                              checked_domains=None)
    assert Alias.objects.filter(domain=world.a).count() == 55
    assert count_queries(alice, url) == few
