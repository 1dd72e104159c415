"""Rows made before the lookup column: they cannot get one (only the token's
hash is kept), so migration 0002 revokes them instead of keeping a lookup by
the token's prefix (which put every typed password in Dovecot's query)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apppasswords.models import AppPassword
from domains import services as domain_services


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    return executor.migrate(targets).apps


@pytest.mark.django_db(transaction=True)
def test_rows_without_a_lookup_are_revoked_and_get_an_impossible_one():
    domain_services.create_domain(actor="t", name="a.example")
    mailbox = domain_services.create_mailbox(actor="t", email="ann@a.example",
                                             password="a long password 1")
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        old_apps = migrate([("apppasswords", "0001_initial")])
        Old = old_apps.get_model("apppasswords", "AppPassword")
        for selector in ("abcd2345", "efgh6789"):
            Old.objects.create(mailbox_id=mailbox.pk, name=selector, selector=selector,
                               password="$2y$05$x")
    finally:
        migrate(leaves)

    rows = list(AppPassword.objects.order_by("selector"))
    assert [(r.selector, r.lookup) for r in rows] == [
        ("abcd2345", "-abcd2345"), ("efgh6789", "-efgh6789")]
    assert all(r.revoked is not None for r in rows)
