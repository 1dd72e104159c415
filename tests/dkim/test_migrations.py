"""The move of the DKIM keys from dnscheck's table to the dkim app's, without loss."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dkim.models import DkimKey
from domains import services as domain_services

# The schema before the dkim app: dnscheck held one key per domain.
BEFORE = [("dnscheck", "0001_initial"), ("dkim", None)]
WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    return executor.migrate(targets).apps


@pytest.mark.django_db(transaction=True)
def test_a_key_of_the_old_table_reaches_the_new_one():
    domain = domain_services.create_domain(actor="t", name="a.example")
    other = domain_services.create_domain(actor="t", name="b.example")
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        old_apps = migrate(BEFORE)
        OldKey = old_apps.get_model("dnscheck", "DkimKey")
        OldKey.objects.create(domain_id=domain.pk, selector="mail2030", algorithm="ed25519",
                              public_key="QUJD" * 11)
        OldKey.objects.filter(domain_id=domain.pk).update(modified=WHEN)
    finally:
        migrate(leaves)

    [key] = DkimKey.objects.all()
    assert (key.domain_id, key.selector, key.algorithm, key.public_key) == (
        domain.pk, "mail2030", "ed25519", "QUJD" * 11)
    assert key.state == DkimKey.State.ACTIVE
    assert key.external
    assert (key.created, key.activated, key.modified, key.revoked) == (WHEN, WHEN, WHEN, None)
    assert not DkimKey.objects.filter(domain=other).exists()
    assert "dnscheck_dkim_keys" not in connection.introspection.table_names()


@pytest.mark.django_db(transaction=True)
def test_migrating_back_keeps_each_domains_active_key():
    domain = domain_services.create_domain(actor="t", name="a.example")
    DkimKey.objects.create(domain=domain, selector="old", public_key="QUJD",
                           state=DkimKey.State.ACTIVE, activated=WHEN)
    DkimKey.objects.create(domain=domain, selector="next", public_key="REVG",
                           state=DkimKey.State.PUBLISHED)
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        old_apps = migrate(BEFORE)
        rows = list(old_apps.get_model("dnscheck", "DkimKey").objects
                    .values_list("domain_id", "selector", "public_key"))
        assert rows == [(domain.pk, "old", "QUJD")]
    finally:
        migrate(leaves)
    assert list(DkimKey.objects.values_list("selector", "state")) == [("old", "active")]


# Before the lifecycle: three states, all keys set by hand.
RAW_ED25519 = "QUJD" * 10 + "QUI="  # 32 bytes
BEFORE_LIFECYCLE = [("dkim", "0002_copy_dnscheck_keys")]


@pytest.mark.django_db(transaction=True)
def test_the_lifecycle_keeps_each_keys_meaning():
    domain = domain_services.create_domain(actor="t", name="a.example")
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        old_apps = migrate(BEFORE_LIFECYCLE)
        OldKey = old_apps.get_model("dkim", "DkimKey")
        for selector, state in (("now", "active"), ("next", "published"), ("old", "retired")):
            OldKey.objects.create(domain_id=domain.pk, selector=selector, public_key=RAW_ED25519,
                                  algorithm="ed25519", state=state,
                                  retired=WHEN if state == "retired" else None)
    finally:
        migrate(leaves)
    rows = {k.selector: k for k in DkimKey.objects.all()}
    assert {s: k.state for s, k in rows.items()} == {
        "now": "active", "next": "published", "old": "revoked"}
    assert rows["old"].revoked == WHEN
    assert all(k.external and k.bits == 256 for k in rows.values())
