"""The audit log's pages read index ranges on either backend, with imports'
rows in the table (issue 12, item 6: it must stay fast with a large log)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.models import AuditEntry
from tests.domains.test_search_plans import assert_index_ranges, fresh_statistics

# ANALYZE TABLE commits on MariaDB (see tests/domains/test_search_plans.py).
pytestmark = pytest.mark.django_db(transaction=True)

URL = reverse("accounts:audit")


@pytest.fixture
def big_log(world: Any) -> Any:
    """Ten imports of 100 rows each, in a.example and b.example, and 200 single rows."""
    for n in range(10):
        domain = world.a if n % 2 else world.b
        event = AuditEntry.objects.create(
            actor="t", action="domain.import", object_type="domain", object_repr=domain.name,
            domain=domain.name, domain_ref=domain.pk,
            after={"kind": "mailboxes", "rows": 100, "created": 100})
        AuditEntry.objects.bulk_create(
            [AuditEntry(actor="t", action="mailbox.import", object_type="mailbox",
                        object_repr=f"u{n}-{i}@{domain.name}", domain=domain.name,
                        domain_ref=domain.pk, parent=event.pk) for i in range(100)])
    AuditEntry.objects.bulk_create(
        [AuditEntry(actor="t", action=f"mailbox.{verb}", object_type="mailbox",
                    object_repr=f"user{n}@x.example", domain="x.example")
         for n in range(100) for verb in ("create", "update")])
    fresh_statistics("audit_log")
    return world


def _log_reads(client: Any, params: dict[str, Any]) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(URL, params).status_code == 200
    return [q["sql"] for q in captured.captured_queries if '"audit_log"' in q["sql"]
            or "`audit_log`" in q["sql"]]


@pytest.mark.parametrize("persona", ["superadmin", "admin_a"])
@pytest.mark.parametrize("params", [{}, {"action": "mailbox.*"}, {"page": "3"}, "batch",
                                    {"actor": "t"}, {"domain": "a.example"}])
def test_the_log_reads_index_ranges(big_log, persona, params):
    if params == "batch":
        params = {"batch": AuditEntry.objects.filter(
            action="domain.import", domain_ref=big_log.a.pk).values_list("pk", flat=True)[0]}
    statements = _log_reads(big_log.client_for(persona), params)
    assert statements
    # The event's own row is read by its primary key (SQLite names no index for that).
    by_key = [s for s in statements if re.search(r'[`"]audit_log[`"]\.[`"]id[`"] = ', s)]
    assert len(by_key) == (params != {} and "batch" in params)
    assert_index_ranges([s for s in statements if s not in by_key], "audit_log")
