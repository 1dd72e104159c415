"""The *_or_404 helpers take only the stored spelling, on SQLite and on MariaDB
alike (MariaDB's collation would match without case and past a NUL)."""

import pytest
from django.urls import reverse


@pytest.mark.parametrize("name", [
    "domains:domain-detail:A.EXAMPLE", "domains:domain-detail:a.example\x00",
    "domains:mailbox-edit:BOB@A.EXAMPLE", "domains:mailbox-edit:bob@a.example\x00",
])
def test_another_spelling_of_an_address_is_404(world, name):
    view, _, value = name.rpartition(":")
    client = world.client_for("admin_a")
    assert client.get(reverse(view, args=[value])).status_code == 404
    stored = value.lower().rstrip("\x00")
    assert client.get(reverse(view, args=[stored])).status_code == 200
