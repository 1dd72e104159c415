"""The auto-reply's `:addresses` follow the aliases and alias domains as they change.

Pigeonhole knows only the mailbox when Postfix delivers over LMTP (no ORCPT:
Dovecot's LMTP announces no DSN), so the script must list every other address
that delivers to it; tests/integration/test_vacation.py proves the reply on the daemons.
"""

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.actor import Actor
from domains import services as domains
from domains.models import Alias, AliasDomain, Domain
from domains.services.imports import AliasImport
from vacation import services
from vacation.models import SieveScript

ADMIN = Actor.account("alice@a.example")


def reply(mailbox):
    services.set_auto_reply(actor=ADMIN, mailbox=mailbox, enabled=True, subject="Away",
                            text="Back soon.")


def listed(mailbox) -> list[str]:
    """The addresses in the mailbox's script (none without a reply)."""
    found = re.search(r":addresses \[([^]]*)\]", SieveScript.objects.get(mailbox=mailbox).script)
    return re.findall(r'"([^"]+)"', found.group(1)) if found else []


def script_id(mailbox) -> int:
    return SieveScript.objects.get(mailbox=mailbox).pk


def test_an_alias_made_after_the_reply_is_listed_and_its_deletion_unlists_it(world):
    reply(world.bob)
    assert listed(world.bob) == ["info@a.example"]
    alias = domains.create_alias(actor="t", source="late@a.example",
                                 destinations="bob@a.example", checked_domains=None)
    assert listed(world.bob) == ["info@a.example", "late@a.example"]
    domains.delete_alias(actor="t", alias=alias)
    assert listed(world.bob) == ["info@a.example"]


def test_an_alias_of_several_destinations_and_of_another_domain(world):
    reply(world.bob)
    domains.create_alias(actor="t", source="team@b.example",
                         destinations="carol@b.example, bob@a.example, x@elsewhere.example",
                         checked_domains=None)
    assert listed(world.bob) == ["info@a.example", "team@b.example"]
    # Taking the mailbox out of the list, or switching the alias off, unlists it.
    team = Alias.objects.get(source="team@b.example")
    domains.update_alias(actor="t", alias=team, destinations="carol@b.example",
                         checked_domains=None)
    assert listed(world.bob) == ["info@a.example"]
    domains.update_alias(actor="t", alias=team, destinations="carol@b.example,bob@a.example",
                         checked_domains=None)
    assert "team@b.example" in listed(world.bob)
    domains.update_alias(actor="t", alias=team, active=False, checked_domains=None)
    assert listed(world.bob) == ["info@a.example"]


def test_alias_domains_made_switched_and_deleted(world):
    reply(world.bob)
    alias_domain = domains.create_alias_domain(actor="t", name="alias-a.example",
                                               target="a.example")
    assert listed(world.bob) == ["bob@alias-a.example", "info@a.example"]
    domains.set_alias_domain_active(actor="t", alias_domain=alias_domain, active=False)
    assert listed(world.bob) == ["info@a.example"]
    domains.set_alias_domain_active(actor="t", alias_domain=alias_domain, active=True)
    domains.delete_alias_domain(actor="t", alias_domain=AliasDomain.objects.get())
    assert listed(world.bob) == ["info@a.example"]


def test_imported_aliases_and_a_deleted_domains_aliases(world):
    reply(world.bob)
    domains.import_aliases(actor="t", domain=world.b, checked_domains=None, rows=[
        AliasImport("sales@b.example", "bob@a.example")])
    assert listed(world.bob) == ["info@a.example", "sales@b.example"]
    domains.delete_domain(actor="t", domain=Domain.objects.get(name="b.example"), force=True)
    assert listed(world.bob) == ["info@a.example"]


def test_unconcerned_scripts_keep_their_row(world):
    """A new row makes Dovecot compile the script again: only a changed script gets one."""
    reply(world.bob)
    services.set_forwarding(actor=ADMIN, mailbox=world.carol, forward_to="x@elsewhere.example",
                            keep=True)
    bob_id, carol_id = script_id(world.bob), script_id(world.carol)
    # An alias to another mailbox; one to a mailbox that only forwards (no reply,
    # nothing listed); an inactive alias to bob (not an address that delivers).
    domains.create_alias(actor="t", source="other@a.example", destinations="carol@b.example",
                         checked_domains=None)
    domains.create_alias(actor="t", source="off@a.example", destinations="bob@a.example",
                         active=False, checked_domains=None)
    assert (script_id(world.bob), script_id(world.carol)) == (bob_id, carol_id)
    domains.create_alias(actor="t", source="new@a.example", destinations="bob@a.example",
                         checked_domains=None)
    assert script_id(world.bob) != bob_id and script_id(world.carol) == carol_id


def test_a_reply_switched_off_is_not_rewritten(world):
    reply(world.bob)
    services.set_auto_reply(actor=ADMIN, mailbox=world.bob, enabled=False, subject="",
                            text="")
    domains.create_alias(actor="t", source="late@a.example", destinations="bob@a.example",
                         checked_domains=None)
    assert not SieveScript.objects.exists()


def test_an_alias_domain_change_on_a_big_domain_costs_queries_per_thousand_replies(world):
    """Measured on MariaDB at 200,000 mailboxes, 50,000 aliases and 1,000 replies on:
    one substring scan of the aliases per reply took 49 s (and every mailbox row of
    the domain stayed locked meanwhile). The refresh reads the aliases listing the
    domain once per thousand replies and locks no mailbox row: the alias-domain
    writers hold the domain's row, which a save of the rules takes first."""
    Domain.objects.filter(pk=world.a.pk).update(max_mailboxes=0)
    mailboxes = [domains.create_mailbox(actor="t", email=f"m{i}@a.example",
                                        password="correct horse battery") for i in range(30)]
    domains.create_alias(actor="t", source="all@a.example",
                         destinations=",".join(m.email for m in mailboxes[:3]),
                         checked_domains=None)
    for mailbox in mailboxes:
        reply(mailbox)
    with CaptureQueriesContext(connection) as queries:
        domains.create_alias_domain(actor="t", name="alias-a.example", target="a.example")
    scans = [q["sql"] for q in queries.captured_queries if "LIKE" in q["sql"]]
    assert len(scans) <= 2, scans
    # No mailbox row of the domain locked (SQLite writes no FOR UPDATE at all).
    assert not [q["sql"] for q in queries.captured_queries
                if "FOR UPDATE" in q["sql"] and 'FROM `users`' in q["sql"]]
    assert len(queries.captured_queries) < 40, len(queries.captured_queries)
    assert listed(mailboxes[0]) == ["all@a.example", "m0@alias-a.example"]
    assert listed(mailboxes[29]) == ["m29@alias-a.example"]
    assert not SieveScript.objects.filter(mailbox=world.bob).exists()  # no reply on
