"""core.bulk: rows written and deleted by plain SQL, on whichever database the run uses."""

import pytest
from django.utils import timezone

from core import audit, bulk
from core.models import AuditEntry
from domains import services
from domains.models import Domain


def _rows(count: int) -> list[tuple]:
    at = bulk.db_value(AuditEntry, "at", timezone.now())
    after = bulk.db_value(AuditEntry, "after", {"n": 1})
    return [("t", "domain.export", "domain", n, f"row {n}", "", None, None, after, None, at)
            for n in range(count)]


COLUMNS = ("actor", "action", "object_type", "object_id", "object_repr", "domain",
           "domain_ref", "before", "after", "parent", "at")


@pytest.mark.django_db
def test_insert_rows_writes_every_row_in_batches():
    assert bulk.insert_rows(AuditEntry, COLUMNS, iter(_rows(25)), batch_size=10) == 25
    assert sorted(AuditEntry.objects.values_list("object_id", flat=True)) == list(range(25))
    assert AuditEntry.objects.get(object_id=3).after == {"n": 1}


@pytest.mark.django_db
def test_insert_rows_refuses_a_column_left_out():
    with pytest.raises(ValueError, match="need the columns"):
        bulk.insert_rows(AuditEntry, COLUMNS[:-1], [row[:-1] for row in _rows(1)])
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_delete_rows_deletes_exactly_the_ids_given():
    bulk.insert_rows(AuditEntry, COLUMNS, _rows(40))
    ids = sorted(AuditEntry.objects.values_list("pk", flat=True))
    # Runs (one range each) and gaps (listed), across batches of 7.
    doomed = ids[0:10] + ids[12:13] + ids[15:30:2] + ids[31:39]
    assert bulk.delete_rows(AuditEntry, doomed, batch_size=7) == len(doomed)
    assert sorted(AuditEntry.objects.values_list("pk", flat=True)) == sorted(
        set(ids) - set(doomed))
    assert bulk.delete_rows(AuditEntry, []) == 0


@pytest.mark.django_db
def test_entry_rows_fill_in_ids_known_only_at_write():
    domain = services.create_domain(actor="t", name="a.example")
    rows = audit.EntryRows(actor="t", action="domain.update", model=Domain, domain=domain)
    rows.add(object_id=None, object_repr="a.example", after={"id": None, "name": "a.example"})
    rows.add(object_id=7, object_repr="other", before={"x": 1})
    assert rows.write(ids={"a.example": domain.pk}) == 2
    first = AuditEntry.objects.get(action="domain.update", object_repr="a.example")
    assert (first.object_id, first.after, first.domain_ref) == (
        domain.pk, {"id": domain.pk, "name": "a.example"}, domain.pk)
    second = AuditEntry.objects.get(action="domain.update", object_repr="other")
    assert (second.object_id, second.before, second.after) == (7, {"x": 1}, None)
