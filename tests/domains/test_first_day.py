"""A domain's first day: postmaster@ and abuse@ at creation, its checklist, the
"New mailbox"/"New alias" domain pickers, the Aliases page, the explicit catch-all."""

from __future__ import annotations

import html

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from accounts import services as account_services
from core.models import AuditEntry
from dkim.models import DkimKey
from domains import services
from domains.checklist import checklist
from domains.models import Alias, Domain, Mailbox
from tests.dnscheck import ERROR, OK, UNKNOWN, WARNING, make_run
from tests.mailadmin.test_hostile_input import FUZZ, TEXT, check, counts

NEW_DOMAIN = {"name": "new.example", "description": "", "max_mailboxes": "0",
              "max_aliases": "0", "max_quota": "0", "default_quota": "0"}


def text(response) -> str:
    return html.unescape(response.content.decode())


# ---------------------------------------------------------------- postmaster@ and abuse@


def test_create_domain_with_role_aliases_in_one_transaction(db):
    domain = services.create_domain(actor="t", name="new.example",
                                    role_aliases_to="me@elsewhere.example")
    aliases = dict(Alias.objects.filter(domain=domain).values_list("source", "destinations"))
    assert aliases == {"postmaster@new.example": "me@elsewhere.example",
                       "abuse@new.example": "me@elsewhere.example"}
    assert list(AuditEntry.objects.filter(domain_ref=domain.pk).order_by("id")
                .values_list("action", flat=True)) == [
        "domain.create", "alias.create", "alias.create"]


@pytest.mark.parametrize(("extra", "message"), [
    ({"role_aliases_to": "nobody@a.example"}, "neither a mailbox nor an alias"),
    ({"role_aliases_to": "not an address"}, ""),
    ({"role_aliases_to": "me@elsewhere.example", "max_aliases": 1}, "do not fit"),
])
def test_a_refused_role_alias_creates_no_domain(world, extra, message):
    before = counts()
    with pytest.raises(ValidationError) as refused:
        services.create_domain(actor="t", name="new.example", **extra)
    assert message in " ".join(refused.value.messages)
    assert counts() == before and not Domain.objects.filter(name="new.example").exists()


def test_the_create_form_offers_both_ticked(world):
    root = world.client_for("superadmin")
    page = text(root.get(reverse("domains:domain-create")))
    assert 'name="role_aliases" id="id_role_aliases" checked' in page \
        or ('name="role_aliases"' in page and "checked" in page.split('name="role_aliases"')[1]
            .split(">")[0])
    response = root.post(reverse("domains:domain-create"),
                         {**NEW_DOMAIN, "role_aliases": "on",
                          "role_aliases_to": "bob@a.example"})
    assert response.status_code == 302
    assert set(Alias.objects.filter(domain__name="new.example")
               .values_list("source", flat=True)) == {"postmaster@new.example",
                                                      "abuse@new.example"}


def test_ticked_without_an_address_is_a_form_error(world):
    response = world.client_for("superadmin").post(
        reverse("domains:domain-create"), {**NEW_DOMAIN, "role_aliases": "on"})
    assert response.status_code == 200
    assert "Give the address postmaster@ and abuse@ deliver to" in text(response)
    assert not Domain.objects.filter(name="new.example").exists()


def test_unticked_makes_no_alias(world):
    response = world.client_for("superadmin").post(
        reverse("domains:domain-create"), {**NEW_DOMAIN, "role_aliases_to": "x@y.example"})
    assert response.status_code == 302
    assert not Alias.objects.filter(domain__name="new.example").exists()


def test_the_first_domain_is_step_two(db):
    user = account_services.create_superadmin(actor="t", username="admin",
                                              password="root passphrase 123")
    client = Client()
    client.force_login(user)
    page = text(client.get(reverse("domains:domain-create")))
    assert "Your first domain" in page and "step 2 of 2" in page


@FUZZ
@given(field=st.sampled_from(["role_aliases", "role_aliases_to", "name"]), value=TEXT)
def test_the_create_form_takes_hostile_text(world, field, value):
    root = world.client_for("superadmin")
    data = {**NEW_DOMAIN, "role_aliases": "on", "role_aliases_to": "x@elsewhere.example",
            field: value}
    before = counts()
    response = root.post(reverse("domains:domain-create"), data)
    check(response, before)
    # The next example starts from the same tables.
    Alias.objects.filter(domain__name="new.example").delete()
    Domain.objects.filter(name="new.example").delete()


# ---------------------------------------------------------------- the checklist


def test_a_new_domain_has_nothing_ticked_and_a_link_for_each(world):
    domain = services.create_domain(actor="t", name="new.example")
    found = {item.label: item for item in checklist(domain)}
    assert [label for label, item in found.items() if item.done] == []
    assert found["DNS records published"].fix_url == reverse("dnscheck:health",
                                                             args=["new.example"])
    assert found["DKIM key active"].fix_url == reverse("dkim:key", args=["new.example"])
    assert found["postmaster@new.example receives mail"].fix_url == (
        reverse("domains:alias-create", args=["new.example"]) + "?local_part=postmaster")
    assert found["A first mailbox"].fix_url == reverse("domains:mailbox-create",
                                                       args=["new.example"])
    assert found["A domain admin, if someone else manages its mailboxes"].optional
    assert [item.label.split(" ")[0] for item in checklist(domain)][:2] == ["DNS", "DKIM"]


def test_every_item_ticks_from_real_state(world):
    a = world.a  # bob's mailbox, alice as its admin
    services.create_alias(actor="t", source="postmaster@a.example",
                          destinations="bob@a.example", checked_domains=None)
    services.create_mailbox(actor="t", email="abuse@a.example", password="x" * 20 + "Q1!")
    DkimKey.objects.create(domain=a, selector="s1", state=DkimKey.State.ACTIVE,
                           public_key="QUJD")
    make_run(a, [("mx", "", OK), ("spf", "", WARNING), ("dmarc", "", OK),
                 ("dnsbl", "192.0.2.10", ERROR)])
    assert all(item.done for item in checklist(a)), checklist(a)
    page = text(world.client_for("admin_a").get(reverse("domains:domain-detail",
                                                        args=["a.example"])))
    assert "Checklist" in page and "To do:" not in page


def test_a_failed_record_or_a_disabled_alias_is_not_ticked(world):
    make_run(world.a, [("mx", "", ERROR), ("spf", "", OK)])
    services.create_alias(actor="t", source="postmaster@a.example",
                          destinations="bob@a.example", active=False, checked_domains=None)
    found = {item.label: item.done for item in checklist(world.a)}
    assert not found["DNS records published"]
    assert not found["postmaster@a.example receives mail"]


def test_a_silent_resolver_is_not_reported_as_missing_records(world):
    # The domain page's banner says the resolver did not answer and the zone shows
    # no verdicts: the checklist must not say the records are missing or wrong.
    run = make_run(world.a, [("mx", "", UNKNOWN), ("spf", "", UNKNOWN), ("dmarc", "", UNKNOWN),
                             ("dkim", "", UNKNOWN)])
    run.silent_resolver = "192.0.2.53"
    run.save()
    item = {item.label: item for item in checklist(world.a)}["DNS records published"]
    assert not item.done
    assert "missing or wrong" not in item.detail
    assert "did not answer" in item.detail and "192.0.2.53" not in item.detail


def test_a_catch_all_receives_for_both(world):
    services.create_alias(actor="t", source="@a.example", destinations="bob@a.example",
                          checked_domains=None)
    found = {item.label: item for item in checklist(world.a)}
    assert found["abuse@a.example receives mail"].done
    assert found["abuse@a.example receives mail"].detail == "through the catch-all"


def test_the_domain_admin_is_not_sent_to_the_superadmin_s_page(world):
    domain = world.b
    world.admin_b.domain_grants.all().delete()  # b has no admin now
    root_page = text(world.client_for("superadmin").get(
        reverse("domains:domain-detail", args=["b.example"])))
    assert "Add a domain admin" in root_page
    assert "Add postmaster@ as an alias" in root_page
    assert domain.name in root_page


def test_the_checklist_costs_the_same_at_any_size(world):
    def queries() -> int:
        with CaptureQueriesContext(connection) as seen:
            checklist(world.a)
        return len(seen)

    make_run(world.a, [("mx", "", OK)])
    first = queries()
    Mailbox.objects.bulk_create(Mailbox(domain=world.a, email=f"m{n}@a.example", password="x")
                                for n in range(200))
    make_run(world.a, [("mx", "", OK), ("spf", "", ERROR)])
    assert queries() == first


# ---------------------------------------------------------------- the pickers


@pytest.mark.parametrize(("url", "create"), [("domains:mailbox-new", "domains:mailbox-create"),
                                             ("domains:alias-new", "domains:alias-create")])
def test_the_picker_lists_the_domains_in_reach(world, url, create):
    root = world.client_for("superadmin")
    page = text(root.get(reverse(url)))
    assert '<option value="a.example">' in page and '<option value="b.example">' in page
    response = root.get(reverse(url), {"domain": "b.example"})
    assert response["Location"] == reverse(create, args=["b.example"])
    alice = world.client_for("admin_a")
    assert alice.get(reverse(url))["Location"] == reverse(create, args=["a.example"])
    assert alice.get(reverse(url), {"domain": "b.example"}).status_code == 404
    assert alice.get(reverse(url), {"domain": "nowhere.example"}).status_code == 404


def test_the_picker_is_bounded_and_searchable(world):
    Domain.objects.bulk_create(Domain(name=f"d{n:03}.example") for n in range(120))
    root = world.client_for("superadmin")
    with CaptureQueriesContext(connection) as seen:
        page = text(root.get(reverse("domains:mailbox-new")))
    assert page.count("<option ") == 50 and 'name="q"' in page
    assert len(seen) < 15
    found = text(root.get(reverse("domains:mailbox-new"), {"q": "d11"}))
    assert found.count("<option ") == 10 and '<option value="d110.example">' in found


def test_the_mailbox_list_has_the_button(world):
    page = text(world.client_for("admin_a").get(reverse("domains:mailbox-list")))
    assert f'href="{reverse("domains:mailbox-new")}"' in page and "New mailbox" in page
    page = text(world.client_for("superadmin").get(reverse("domains:mailbox-list"),
                                                   {"domain": "b.example"}))
    assert f'href="{reverse("domains:mailbox-new")}?domain=b.example"' in page


@FUZZ
@given(field=st.sampled_from(["q", "domain"]), value=TEXT)
def test_the_picker_takes_hostile_text(world, field, value):
    response = world.client_for("admin_a").get(reverse("domains:alias-new"), {field: value})
    assert response.status_code in {200, 302, 404}


# ---------------------------------------------------------------- the Aliases page


def test_the_aliases_page_shows_only_what_is_in_reach(world):
    services.create_alias(actor="t", source="sales@b.example", destinations="carol@b.example",
                          checked_domains=None)
    alice = text(world.client_for("admin_a").get(reverse("domains:aliases")))
    assert "info@a.example" in alice and "sales@b.example" not in alice
    root = text(world.client_for("superadmin").get(reverse("domains:aliases")))
    assert "info@a.example" in root and "sales@b.example" in root
    assert f'href="{reverse("domains:alias-new")}"' in root
    nav = text(world.client_for("admin_b").get("/"))
    assert f'<a href="{reverse("domains:aliases")}">Aliases</a>' in nav


def test_the_aliases_page_is_paged_and_searchable(world):
    Alias.objects.bulk_create(Alias(domain=world.a, source=f"x{n:03}@a.example",
                                    destinations="bob@a.example") for n in range(120))
    alice = world.client_for("admin_a")
    first = text(alice.get(reverse("domains:aliases")))
    assert first.count("/aliases/x") == 50 - 1 and "Next" in first  # info@ sorts first
    third = text(alice.get(reverse("domains:aliases"), {"page": 3}))
    assert "x119@a.example" in third and "Next</a>" not in third
    found = text(alice.get(reverse("domains:aliases"), {"q": "x05"}))
    assert found.count("/aliases/x05") == 10


# ---------------------------------------------------------------- the explicit catch-all


def create(client, data):
    return client.post(reverse("domains:alias-create", args=["a.example"]), data)


def test_the_catch_all_is_a_choice_with_a_warning(world):
    page = text(world.client_for("admin_a").get(
        reverse("domains:alias-create", args=["a.example"]), {"local_part": "postmaster"}))
    assert "Catch-all: every address at a.example without its own mailbox or alias" in page
    assert "backscatter" in page
    assert 'value="postmaster"' in page


def test_an_empty_address_is_no_longer_the_catch_all(world):
    alice = world.client_for("admin_a")
    response = create(alice, {"kind": "address", "local_part": "",
                              "destinations": "bob@a.example"})
    assert response.status_code == 200
    assert "Give the part before the @, or choose the catch-all." in text(response)
    assert not Alias.objects.filter(source="@a.example").exists()
    response = create(alice, {"kind": "catchall", "local_part": "ignored",
                              "destinations": "bob@a.example"})
    assert response.status_code == 302
    assert Alias.objects.filter(source="@a.example").exists()
    assert not Alias.objects.filter(source="ignored@a.example").exists()
    # The stored form and its URLs stay as they were.
    assert alice.get(reverse("domains:alias-edit", args=["@a.example"])).status_code == 200


def test_an_unknown_choice_is_a_form_error(world):
    response = create(world.client_for("admin_a"),
                      {"kind": "everything", "local_part": "x", "destinations": "bob@a.example"})
    assert response.status_code == 200 and not Alias.objects.filter(
        source="x@a.example").exists()


@FUZZ
@given(field=st.sampled_from(["kind", "local_part"]), value=TEXT)
def test_the_alias_form_takes_hostile_text(world, field, value):
    before = counts()
    response = create(world.client_for("admin_a"),
                      {"kind": "address", "local_part": "sales",
                       "destinations": "bob@a.example", field: value})
    check(response, before)
    Alias.objects.filter(source__in=["sales@a.example", "@a.example"]).delete()
    AuditEntry.objects.filter(action="alias.create").delete()


def test_a_second_catch_all_is_refused_on_the_choice_not_the_address(world):
    services.create_alias(actor="t", source="@a.example", destinations="bob@a.example",
                          checked_domains=None)
    response = create(world.client_for("admin_a"), {"kind": "catchall", "local_part": "",
                                                    "destinations": "bob@a.example"})
    errors = response.context["form"].errors
    assert "already the catch-all" in " ".join(errors["kind"]) and "local_part" not in errors
