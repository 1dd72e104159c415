"""A domain admin learns nothing about addresses or domains outside their reach (issue 8, 3).

As admin_a (a.example), an alias destination in b.example (hosted, not theirs)
must give the same answer whether the address exists there or not, and the
same answer as an address in a domain this server does not host at all.
"""

from __future__ import annotations

import html
import re

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from domains import csv_io, services
from domains.models import Alias, ImportJob

# In b.example: carol exists, ghost does not. nowhere.example is not hosted.
OUTSIDE = ["carol@b.example", "ghost@b.example", "ghost@nowhere.example"]


def masked(text: str, *addresses: str) -> str:
    """The page with the varying addresses (and the CSRF token) masked."""
    text = html.unescape(text)
    for address in addresses:
        text = text.replace(address, "ADDRESS")
    return re.sub(r"[A-Za-z0-9]{64}", "TOKEN", text)


def test_the_alias_form_answers_the_same_for_any_address_outside_reach(world):
    alice = world.client_for("admin_a")
    answers = []
    for target in OUTSIDE:
        response = alice.post(reverse("domains:alias-create", args=["a.example"]),
                              {"local_part": "fw", "destinations": target})
        followed = alice.get(response["Location"]) if response.status_code == 302 else response
        answers.append((response.status_code, response.get("Location"),
                        masked(followed.content.decode(), target)))
        assert Alias.objects.get(source="fw@a.example").destination_list == [target]
        Alias.objects.filter(source="fw@a.example").delete()  # the next one starts alike
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 302


def test_the_alias_edit_form_answers_the_same_for_any_address_outside_reach(world):
    alice = world.client_for("admin_a")
    answers = []
    for target in OUTSIDE:
        response = alice.post(reverse("domains:alias-edit", args=["info@a.example"]),
                              {"destinations": f"bob@a.example\n{target}", "active": "on"})
        answers.append((response.status_code, response.get("Location")))
        assert Alias.objects.get(source="info@a.example").destination_list == [
            "bob@a.example", target]
    assert answers[0] == answers[1] == answers[2]


def test_own_domains_are_still_checked_for_a_domain_admin(world):
    alice = world.client_for("admin_a")
    response = alice.post(reverse("domains:alias-create", args=["a.example"]),
                          {"local_part": "sales", "destinations": "nobody@a.example"})
    assert response.status_code == 200
    assert ("nobody@a.example is in a domain of this server but neither a mailbox nor an "
            "alias.") in html.unescape(response.content.decode())
    assert not Alias.objects.filter(source="sales@a.example").exists()


def test_the_superadmin_keeps_the_full_check(world):
    root = world.client_for("superadmin")
    response = root.post(reverse("domains:alias-create", args=["a.example"]),
                         {"local_part": "sales", "destinations": "ghost@b.example"})
    assert response.status_code == 200
    assert ("ghost@b.example is in a domain of this server but neither a mailbox nor an "
            "alias.") in html.unescape(response.content.decode())
    assert not Alias.objects.filter(source="sales@a.example").exists()


def test_the_command_line_keeps_the_full_check(world, cli):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=re.escape("ghost@b.example is in a domain of")):
        cli("alias", "add", "sales@a.example", "ghost@b.example")


def test_the_service_checks_only_the_given_domains_and_the_alias_own(world):
    services.create_alias(actor="t", source="x@a.example", destinations="ghost@b.example",
                          checked_domains=frozenset({"a.example"}))
    with pytest.raises(ValidationError, match=re.escape("ghost@a.example is in a domain")):
        services.create_alias(actor="t", source="y@a.example", destinations="ghost@a.example",
                              checked_domains=frozenset())
    with pytest.raises(ValidationError, match=re.escape("ghost@b.example is in a domain")):
        services.create_alias(actor="t", source="z@a.example", destinations="ghost@b.example",
                              checked_domains=None)


def test_the_inline_address_check_answers_the_same_for_addresses_elsewhere(world):
    alice = world.client_for("admin_a")
    url = reverse("domains:mailbox-check", args=["a.example"])
    answers = [(r.status_code, masked(r.content.decode(), target))
               for target in OUTSIDE
               for r in [alice.get(url, {"local_part": target})]]
    assert answers[0] == answers[1] == answers[2]


def upload(client, content: str):
    return client.post(reverse("domains:import", args=["a.example"]), {
        "kind": "aliases",
        "file": SimpleUploadedFile("f.csv", content.encode(), content_type="text/csv")})


def test_the_alias_import_preview_cannot_tell_addresses_elsewhere_apart(world):
    alice = world.client_for("admin_a")
    rows = [f"fw{number}@a.example,{target}" for number, target in enumerate(OUTSIDE)]
    response = upload(alice, "source,destinations\n" + "\n".join(rows) + "\n")
    assert response.status_code == 200
    preview = response.context["preview"]
    assert preview.ok and preview.bad == 0
    assert [row.errors for row in preview.shown] == [[], [], []]
    # One file per address: the whole page is the same but for the address.
    pages = []
    ImportJob.objects.all().delete()
    for target in OUTSIDE:
        single = upload(alice, f"source,destinations\nfw@a.example,{target}\n")
        pages.append((single.status_code,
                       re.sub(r"/import/\d+/", "/import/N/", masked(single.content.decode(),
                                                                     target))))
    assert pages[0] == pages[1] == pages[2]


def test_the_alias_import_runs_with_the_admin_reach(world, django_capture_on_commit_callbacks):
    alice = world.client_for("admin_a")
    response = upload(alice, "source,destinations\nfw@a.example,ghost@b.example\n")
    job = response.context["job"]
    with django_capture_on_commit_callbacks(execute=True):
        alice.post(reverse("domains:import-confirm", args=["a.example", job.pk]))
    job.refresh_from_db()
    assert (job.state, job.error) == (ImportJob.State.DONE, "")
    assert Alias.objects.get(source="fw@a.example").destination_list == ["ghost@b.example"]


def test_the_superadmin_import_preview_keeps_the_full_check(world):
    root = world.client_for("superadmin")
    response = upload(root, "source,destinations\nfw@a.example,ghost@b.example\n")
    assert [row.errors for row in response.context["preview"].shown] == [[
        "ghost@b.example is in a domain of this server but neither a mailbox nor an alias."]]


def test_the_import_service_checks_only_the_given_domains(world):
    rows = [services.AliasImport(source="fw@a.example", destinations=("ghost@b.example",))]
    assert services.alias_import_problems(
        domain=world.a, rows=rows, checked_domains=frozenset({"a.example"})) == [[]]
    assert services.alias_import_problems(domain=world.a, rows=rows, checked_domains=None) == [[
        "ghost@b.example is in a domain of this server but neither a mailbox nor an alias."]]
    created = services.import_aliases(actor="t", domain=world.a, rows=rows,
                                      checked_domains=frozenset())
    assert [a.source for a in created] == ["fw@a.example"]
    assert csv_io  # the pages above go through csv_io.parse_upload


# Issue 8 review, item 4: a cascade from another tenant's delete names no other tenant's admin.


def test_a_delete_in_another_domain_shows_no_admin_name_in_this_domains_history(world):
    from core.models import AuditEntry
    from tests.conftest import MAILBOX_PASSWORD

    services.create_alias(actor="t", source="fw@a.example",
                          destinations="carol@b.example,bob@a.example", checked_domains=None)
    services.create_alias(actor="t", source="solo@a.example", destinations="carol@b.example",
                          checked_domains=None)
    services.create_alias(actor="t", source="team@b.example", destinations="carol@b.example,"
                          "bob@a.example", checked_domains=None)
    services.delete_mailbox(actor="bert@b.example", mailbox=world.carol)
    in_a = AuditEntry.objects.filter(domain_ref=world.a.pk,
                                     action__in=["alias.update", "alias.delete"])
    assert {(e.action, e.object_repr) for e in in_a} == {
        ("alias.update", "fw@a.example"), ("alias.delete", "solo@a.example")}
    assert {e.actor for e in in_a} == {str(services.ELSEWHERE_ACTOR)}
    assert "bert" not in str(services.ELSEWHERE_ACTOR)
    # In its own domain the cascade is the deleting admin's own act.
    own = AuditEntry.objects.get(domain_ref=world.b.pk, action="alias.update")
    assert own.actor == "bert@b.example"
    # A forced domain delete cascades into other domains the same way.
    services.create_mailbox(actor="t", email="dora@b.example", password=MAILBOX_PASSWORD)
    services.create_alias(actor="t", source="fw2@a.example",
                          destinations="dora@b.example,bob@a.example", checked_domains=None)
    services.delete_domain(actor="bert@b.example", domain=world.b, force=True)
    assert AuditEntry.objects.get(object_repr="fw2@a.example", action="alias.update"
                                  ).actor == str(services.ELSEWHERE_ACTOR)


@pytest.mark.parametrize("function", [services.create_alias, services.update_alias,
                                      services.alias_import_problems, services.import_aliases,
                                      csv_io.parse_upload])
def test_the_reach_of_the_actor_is_a_required_argument(function):
    """Issue 8 review, item 3: a caller that forgets the reach must fail, not check nothing."""
    import inspect

    parameter = inspect.signature(function).parameters["checked_domains"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    assert parameter.default is inspect.Parameter.empty
