"""Every search reads an index range, on whichever backend the suite runs on.

The views' own SQL is captured and explained: on SQLite no table may be
SCANned (a LIKE that ignores case cannot use a binary index), on MariaDB no
table may be read by a full scan (type ALL) or a full index scan (index).
A few hundred rows and ANALYZE give the planners realistic statistics.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.models import AuditEntry
from domains.models import Alias, Domain, Mailbox

# ANALYZE TABLE commits on MariaDB, so these tests cannot run inside a
# transaction that is rolled back.
pytestmark = pytest.mark.django_db(transaction=True)

DOMAINS, PER_DOMAIN = 200, 3


@pytest.fixture
def many(world: Any) -> Any:
    """200 more domains with 3 mailboxes, named, and 2 aliases each."""
    domains = Domain.objects.bulk_create(
        [Domain(name=f"d{n:03}.example") for n in range(DOMAINS)])
    domains = list(Domain.objects.filter(name__in=[d.name for d in domains]))
    Mailbox.objects.bulk_create(
        [Mailbox(domain=d, email=f"user{j}@{d.name}", password="x", name=f"Person {d.pk} {j}")
         for d in domains for j in range(PER_DOMAIN)])
    Alias.objects.bulk_create(
        [Alias(domain=d, source=f"{local}@{d.name}", destinations=f"user0@{d.name}")
         for d in domains for local in ("info", "postmaster")])
    AuditEntry.objects.bulk_create(
        [AuditEntry(actor="t", action=f"mailbox.{verb}", object_type="mailbox",
                    object_repr=f"user{n}@x.example", domain="x.example")
         for n in range(100) for verb in ("create", "update")])
    fresh_statistics("domains", "users", "aliases", "audit_log")
    return world


def fresh_statistics(*tables: str) -> None:
    """The planner's statistics for `tables` after bulk inserts."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("ANALYZE")
            return
        # Rebuilt first: right after the bulk inserts InnoDB's estimate of a
        # range can be off by half (200 rows for d1%), and the plan with it.
        for statement in ("OPTIMIZE", "ANALYZE"):
            cursor.execute(f"{statement} TABLE {', '.join(tables)}")
            cursor.fetchall()


def plan_of(sql: str) -> list[str]:
    """The plan of one statement, a line per step, in the backend's own words."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            return [row[3] for row in cursor.fetchall()]
        cursor.execute(f"EXPLAIN {sql}")
        names = [c[0] for c in cursor.description]
        return [" ".join(f"{k}={v}" for k, v in zip(names, row, strict=True))
                for row in cursor.fetchall()]


def searches(client: Any, url: str, params: dict[str, str], term: str) -> list[str]:
    """The SQL of the statements a page runs with the search term in them.

    The session lookup is left out: its random key may hold the term too.
    """
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, params).status_code == 200
    found = [q["sql"] for q in captured.captured_queries
             if term in q["sql"] and "django_session" not in q["sql"]]
    assert found, f"no statement with {term!r} in it"
    return found


def assert_index_ranges(statements: list[str], table: str) -> None:
    for sql in statements:
        plan = plan_of(sql)
        shown = "\n".join(plan)
        if connection.vendor == "sqlite":
            assert not [s for s in plan if s.startswith("SCAN ")], f"{sql}\n{shown}"
            assert [s for s in plan if s.startswith(f"SEARCH {table} USING")
                    and "INDEX" in s], f"{sql}\n{shown}"
        else:
            rows = [dict(p.split("=", 1) for p in line.split(" ") if "=" in p) for line in plan]
            for row in rows:
                assert row.get("type") not in {"ALL", "index"}, f"{sql}\n{shown}"
            mine = [r for r in rows if r.get("table") == table]
            assert mine and all(r["type"] in {"range", "ref", "eq_ref", "const"}
                                and r["key"] != "None" for r in mine), f"{sql}\n{shown}"


def test_it_searches_mailboxes_by_address_in_an_index_range(many):
    client = many.client_for("superadmin")
    statements = searches(client, reverse("domains:mailbox-list"), {"q": "User1"}, "user1")
    assert_index_ranges(statements, "users")


def test_it_searches_mailboxes_by_name_in_an_index_range(many):
    client = many.client_for("superadmin")
    statements = searches(client, reverse("domains:mailbox-list"), {"q": "Person 7"},
                          "erson 7")
    assert_index_ranges(statements, "users")


def test_it_searches_a_domains_mailboxes_in_an_index_range(many):
    client = many.client_for("superadmin")
    statements = searches(client, reverse("domains:mailbox-list"),
                          {"q": "user2", "domain": "d100.example"}, "user2")
    assert_index_ranges(statements, "users")


def test_it_searches_a_domain_admins_mailboxes_in_an_index_range(many):
    client = many.client_for("admin_a")
    statements = searches(client, reverse("domains:mailbox-list"), {"q": "Bob@A"}, "bob@a")
    assert_index_ranges(statements, "users")


def test_it_searches_a_domains_aliases_in_an_index_range(many):
    client = many.client_for("superadmin")
    statements = searches(client, reverse("domains:alias-list", args=["d100.example"]),
                          {"q": "inf"}, "inf")
    assert_index_ranges(statements, "aliases")


def test_it_searches_domains_in_an_index_range(many):
    client = many.client_for("superadmin")
    statements = searches(client, reverse("domains:domain-list"), {"q": "D1"}, "d1")
    assert_index_ranges(statements, "domains")
