import io
import json
import sys

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from core.models import AuditEntry
from domains import services
from domains.models import DomainAdmin

PW = "admin passphrase 123"


def admin(monkeypatch, *args: str, stdin: str = "") -> str:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    out = io.StringIO()
    call_command("admin", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_adds_a_superadmin_and_a_domain_admin(monkeypatch):
    services.create_domain(actor="t", name="example.org")
    admin(monkeypatch, "add", "alice@example.org", "--superadmin", "--password-stdin",
          stdin=PW + "\n")
    admin(monkeypatch, "add", "Dan@Example.org", "--domain", "example.org", "--password-stdin",
          stdin=PW + "\n")
    assert User.objects.get(username="alice@example.org").is_superuser
    dan = User.objects.get(username="dan@example.org")
    assert not dan.is_superuser and dan.check_password(PW)
    assert list(DomainAdmin.objects.values_list("domain__name", flat=True)) == ["example.org"]
    rows = json.loads(admin(monkeypatch, "list", "--json"))
    assert {r["username"]: r["role"] for r in rows} == {
        "alice@example.org": "superadmin", "dan@example.org": "domain admin"}
    assert PW not in str(list(AuditEntry.objects.values_list("before", "after")))


@pytest.mark.django_db
@pytest.mark.parametrize("args, message", [
    (["add", "x@example.org", "--password-stdin"], "needs at least one domain"),
    (["add", "x@example.org", "--domain", "nowhere.org", "--password-stdin"],
     "not a domain of this server"),
    (["add", "x@example.org", "--superadmin", "--domain", "example.org", "--password-stdin"],
     "drop --domain"),
    (["add", "mailbox:x@example.org", "--superadmin", "--password-stdin"], "user name"),
])
def test_it_refuses_bad_accounts(monkeypatch, args, message):
    services.create_domain(actor="t", name="example.org")
    with pytest.raises(CommandError) as refused:
        admin(monkeypatch, *args, stdin=PW + "\n")
    assert message in str(refused.value)
    assert not User.objects.exists()


@pytest.mark.django_db
def test_it_moves_a_domain_admin_between_domains(monkeypatch):
    services.create_domain(actor="t", name="a.example")
    services.create_domain(actor="t", name="b.example")
    admin(monkeypatch, "add", "dan@a.example", "--domain", "a.example", "--password-stdin",
          stdin=PW + "\n")
    admin(monkeypatch, "domains", "dan@a.example", "--domain", "b.example")
    assert list(DomainAdmin.objects.values_list("domain__name", flat=True)) == ["b.example"]
    entry = AuditEntry.objects.get(action="admin.domains")
    assert (entry.before, entry.after) == ({"domains": ["a.example"]}, {"domains": ["b.example"]})


@pytest.mark.django_db
def test_it_refuses_a_domain_admin_without_domains(monkeypatch):
    services.create_domain(actor="t", name="a.example")
    admin(monkeypatch, "add", "dan@a.example", "--domain", "a.example", "--password-stdin",
          stdin=PW + "\n")
    with pytest.raises(CommandError, match="A domain admin needs at least one domain"):
        admin(monkeypatch, "domains", "dan@a.example")
    assert list(DomainAdmin.objects.values_list("domain__name", flat=True)) == ["a.example"]


NEW_PW = "another admin passphrase 7"


@pytest.mark.django_db
def test_it_resets_disables_enables_and_deletes_an_admin(monkeypatch):
    services.create_domain(actor="t", name="a.example")
    admin(monkeypatch, "add", "root@a.example", "--superadmin", "--password-stdin",
          stdin=PW + "\n")
    admin(monkeypatch, "add", "dan@a.example", "--domain", "a.example", "--password-stdin",
          stdin=PW + "\n")
    assert "dan@a.example" in admin(monkeypatch, "passwd", "Dan@a.example", "--password-stdin",
                                    stdin=NEW_PW + "\n")
    assert User.objects.get(username="dan@a.example").check_password(NEW_PW)
    admin(monkeypatch, "disable", "dan@a.example")
    assert not User.objects.get(username="dan@a.example").is_active
    admin(monkeypatch, "enable", "dan@a.example")
    assert User.objects.get(username="dan@a.example").is_active
    admin(monkeypatch, "delete", "dan@a.example")
    assert not User.objects.filter(username="dan@a.example").exists()
    assert not DomainAdmin.objects.exists()
    actions = list(AuditEntry.objects.filter(object_repr__contains="dan").values_list(
        "action", flat=True).order_by("id"))
    assert actions[-4:] == ["admin.password", "admin.disable", "admin.enable", "admin.delete"]
    assert NEW_PW not in str(list(AuditEntry.objects.values_list("before", "after")))


@pytest.mark.django_db
@pytest.mark.parametrize("args, stdin, message", [
    (["passwd", "nobody@a.example", "--password-stdin"], PW, "nobody@a.example is not an admin"),
    (["disable", "mailbox:1"], "", "mailbox:1 is not an admin"),
    (["delete", "nobody@a.example"], "", "nobody@a.example is not an admin"),
    (["passwd", "root@a.example", "--password-stdin"], "short", "too short"),
    (["disable", "root@a.example"], "", "the last active superadmin"),
    (["delete", "root@a.example"], "", "the last active superadmin"),
])
def test_it_refuses_bad_admin_changes_in_one_line(monkeypatch, args, stdin, message):
    admin(monkeypatch, "add", "root@a.example", "--superadmin", "--password-stdin",
          stdin=PW + "\n")
    with pytest.raises(CommandError) as refused:
        admin(monkeypatch, *args, stdin=stdin + "\n")
    assert message in str(refused.value) and "\n" not in str(refused.value)
    root = User.objects.get(username="root@a.example")
    assert root.is_active and root.check_password(PW)
