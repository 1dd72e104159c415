import io
import json
import sys

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import AuditEntry, DomainAdmin
from domains import services

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
