"""Forms show every problem at once, each on its field, with focus on the first.

Checked in the HTML the panel sends: aria-invalid and aria-describedby on
the inputs, the ids they name present, one autofocus, the right autocomplete.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from core.errors import FieldErrors, codes, on_field
from domains import services
from domains.models import Mailbox

STRONG = "a fine long password 42"


def html(response: Any) -> str:
    return response.content.decode()


def tag(page: str, name: str) -> str:
    """The <input>/<textarea> tag of the field NAME."""
    found = re.search(rf'<(?:input|textarea)[^>]*name="{name}"[^>]*>', page)
    assert found, name
    return found.group(0)


def described_by(page: str, name: str) -> list[str]:
    found = re.search(r'aria-describedby="([^"]*)"', tag(page, name))
    return found.group(1).split() if found else []


def assert_linked(page: str, name: str, *, invalid: bool) -> None:
    """Every id the field names exists; an invalid field says so and names its errors."""
    ids = described_by(page, name)
    for element_id in ids:
        assert f'id="{element_id}"' in page, (name, element_id)
    assert ('aria-invalid="true"' in tag(page, name)) == invalid, name
    assert (f"id_{name}_error" in ids) == invalid, name


# ---------------------------------------------------------------- core.errors


def test_field_errors_collect_every_refusal_with_its_codes():
    problems = FieldErrors()
    with problems.on("quota"):
        raise ValidationError("bad size", code="size")
    with problems.on("email"):
        raise ValidationError({"password": "too short"})
    with problems.on("name"):
        pass
    with pytest.raises(ValidationError) as raised:
        problems.raise_any()
    assert raised.value.message_dict == {"quota": ["bad size"], "password": ["too short"]}
    assert codes(raised.value) == {"size", None}


def test_on_field_names_the_field_and_keeps_a_dict_as_it_is():
    with pytest.raises(ValidationError) as raised, on_field("email"):
        raise ValidationError("taken", code="taken")
    assert raised.value.message_dict == {"email": ["taken"]} and codes(raised.value) == {"taken"}
    with pytest.raises(ValidationError) as raised, on_field("email"):
        raise ValidationError({"password": "weak"})
    assert raised.value.message_dict == {"password": ["weak"]}


def test_services_raise_every_input_problem_at_once(world):
    with pytest.raises(ValidationError) as raised:
        services.create_mailbox(actor="t", email="bad address@a.example", password="x",
                                quota="lots", name="a\x00b")
    assert set(raised.value.message_dict) == {"email", "password", "quota", "name"}
    with pytest.raises(ValidationError) as raised:
        services.create_domain(actor="t", name="a.example")
    assert set(raised.value.message_dict) == {"name"}


# ---------------------------------------------------------------- the pages


def test_new_mailbox_shows_every_problem_on_its_field(world):
    client = world.client_for("admin_a")
    url = reverse("domains:mailbox-create", args=["a.example"])
    page = client.get(url)
    assert 'autofocus' not in html(page)
    response = client.post(url, {"local_part": "bob", "name": "", "quota": "lots",
                                 "password": STRONG, "password_again": STRONG + "!"})
    page = html(response)
    assert Mailbox.objects.filter(email__startswith="bob@").count() == 1
    errors = response.context["form"].errors
    # taken (the service's refusal), bad size and differing passwords: one submit, all three
    assert "bob@a.example is already a mailbox." in errors["local_part"]
    assert errors["quota"] and errors["password_again"]
    for name, invalid in [("local_part", True), ("quota", True), ("password_again", True),
                          ("name", False), ("password", False)]:
        assert_linked(page, name, invalid=invalid)
    # focus on the first problem, and only there
    assert page.count("autofocus") == 1 and "autofocus" in tag(page, "local_part")
    # the live check sits right under the address and is read with it
    assert "address-check" in described_by(page, "local_part")
    assert page.index('id="address-check"') < page.index('name="name"')
    assert '3 fields below need a change.' in page


def test_a_refusal_only_the_service_knows_lands_on_its_field(world):
    client = world.client_for("admin_a")
    for local in ("m1", "m2"):
        services.create_mailbox(actor="t", email=f"{local}@a.example", password=STRONG)
    response = client.post(reverse("domains:mailbox-create", args=["a.example"]), {
        "local_part": "dave", "quota": "", "password": STRONG, "password_again": STRONG})
    assert "reached its limit" in " ".join(response.context["form"].non_field_errors())
    a = world.a
    a.max_mailboxes, a.max_quota, a.default_quota = 0, 2 * 1024**3, 1024**3
    a.save()
    response = client.post(reverse("domains:mailbox-create", args=["a.example"]), {
        "local_part": "dave", "quota": "5G", "password": STRONG, "password_again": STRONG})
    form = response.context["form"]
    assert "does not fit" in " ".join(form.errors["quota"]) and not form.non_field_errors()
    assert_linked(html(response), "quota", invalid=True)


def test_domain_form_lists_every_limit_problem(world):
    client = world.client_for("superadmin")
    response = client.post(reverse("domains:domain-create"), {
        "name": "a.example", "max_mailboxes": "-1", "max_aliases": "0", "max_quota": "huge",
        "default_quota": "tiny"})
    errors = response.context["form"].errors
    assert {"max_mailboxes", "max_quota", "default_quota"} <= set(errors)
    response = client.post(reverse("domains:domain-create"), {
        "name": "a.example", "max_mailboxes": "0", "max_aliases": "0", "max_quota": "0",
        "default_quota": "0"})
    assert response.context["form"].errors == {"name": ["The domain a.example already exists."]}
    assert_linked(html(response), "name", invalid=True)


def test_alias_refusals_land_on_address_and_destinations(world):
    client = world.client_for("admin_a")
    response = client.post(reverse("domains:alias-create", args=["a.example"]),
                           {"local_part": "info", "destinations": "nobody@a.example"})
    errors = response.context["form"].errors
    assert "already an alias" in " ".join(errors["local_part"])
    response = client.post(reverse("domains:alias-create", args=["a.example"]),
                           {"local_part": "sales", "destinations": "nobody@a.example"})
    errors = response.context["form"].errors
    assert "nobody@a.example" in " ".join(errors["destinations"]) and "__all__" not in errors
    assert_linked(html(response), "destinations", invalid=True)


def test_admin_form_names_every_unknown_domain_and_a_taken_name(world):
    client = world.client_for("superadmin")
    response = client.post(reverse("accounts:admin-create"), {
        "username": "alice@a.example", "password": STRONG, "password_again": STRONG,
        "domains": "nope.example, a.example, gone.example"})
    errors = response.context["form"].errors
    assert "nope.example" in " ".join(errors["domains"])
    assert "gone.example" in " ".join(errors["domains"])
    response = client.post(reverse("accounts:admin-create"), {
        "username": "alice@a.example", "password": STRONG, "password_again": STRONG,
        "domains": "a.example"})
    assert "already exists" in " ".join(response.context["form"].errors["username"])
    page = html(response)
    assert 'autocomplete="off"' in tag(page, "username")
    assert 'autocomplete="new-password"' in tag(page, "password")


@pytest.mark.parametrize("persona, url_name, args, fields", [
    ("admin_a", "domains:mailbox-create", ["a.example"],
     {"password": "new-password", "password_again": "new-password"}),
    ("admin_a", "domains:mailbox-edit", ["bob@a.example"], {"password": "new-password"}),
    ("superadmin", "accounts:admin-create", [],
     {"password": "new-password", "password_again": "new-password"}),
    ("mailbox", "accounts:password", [],
     {"current": "current-password", "new": "new-password", "new_again": "new-password"}),
])
def test_password_fields_say_what_the_browser_should_fill(world, persona, url_name, args,
                                                          fields):
    page = html(world.client_for(persona).get(reverse(url_name, args=args)))
    for name, value in fields.items():
        assert f'autocomplete="{value}"' in tag(page, name), name


def test_own_password_hint_sits_under_the_new_password(world):
    client = world.client_for("mailbox")
    response = client.post(reverse("accounts:password"), {
        "current": "wrong one", "new": "x", "new_again": "y"})
    page = html(response)
    assert "hint" in described_by(page, "new")
    assert 'hx-post="' + reverse("accounts:password-hint") + '"' in tag(page, "new")
    assert_linked(page, "new_again", invalid=True)


def test_sign_in_marks_both_fields_after_a_failure(world):
    client = world.client_for("anonymous")
    page = html(client.get(reverse("login")))
    assert 'autocomplete="username"' in tag(page, "username")
    assert 'autocomplete="current-password"' in tag(page, "password")
    assert "aria-invalid" not in page
    page = html(client.post(reverse("login"), {"username": "nobody", "password": "wrong"}))
    for name in ("username", "password"):
        assert 'aria-invalid="true"' in tag(page, name)
        assert 'aria-describedby="login-error"' in tag(page, name)
    assert 'id="login-error"' in page


@pytest.mark.parametrize("hostile", ["<script>alert(1)</script>", "\x00", "x" * 5000,
                                     '" autofocus onfocus="alert(1)'])
def test_hostile_input_is_an_error_on_its_field_never_markup(world, hostile):
    client = world.client_for("admin_a")
    response = client.post(reverse("domains:mailbox-create", args=["a.example"]), {
        "local_part": hostile, "quota": hostile, "name": hostile,
        "password": STRONG, "password_again": STRONG})
    assert response.status_code == 200
    page = html(response)
    assert "<script>alert" not in page and 'onfocus="alert' not in page
    assert response.context["form"].errors.get("local_part")
    assert "autofocus" in tag(page, "local_part")


def test_a_refused_choice_gets_one_autofocus_on_its_first_option(world):
    # A radio group is one field of several inputs: focus goes to the first of them
    # only (two autofocus attributes in a document are invalid HTML).
    response = world.client_for("admin_a").post(
        reverse("domains:alias-create", args=["a.example"]),
        {"kind": "everything", "local_part": "x", "destinations": "bob@a.example"})
    page = html(response)
    assert page.count("autofocus") == 1
    assert re.search(r'<input[^>]*autofocus[^>]*id="id_kind_0"', page)
