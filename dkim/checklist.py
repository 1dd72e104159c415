"""dkim's item on a domain's checklist: a key signs the domain's mail."""

from __future__ import annotations

from django.urls import reverse

from dkim.models import DkimKey
from domains.checklist import Item
from domains.models import Domain


def key_active(domain: Domain) -> Item:
    active = DkimKey.objects.filter(domain=domain, state=DkimKey.State.ACTIVE).exists()
    if active:
        return Item("DKIM key active", True, "outgoing mail is signed", order=20)
    return Item("DKIM key active", False, "outgoing mail is not signed yet",
                reverse("dkim:key", args=[domain.name]), "Set up DKIM", order=20)
