"""A domain's first-day checklist: each item ticked from the tables, never remembered.

domains knows its own items (postmaster@ and abuse@ receive mail, a mailbox,
a domain admin). Apps above it (dnscheck: the records are published; dkim:
a key signs) register theirs when Django starts (their AppConfig.ready),
as they do for a domain's deletion, so this module imports none of them.
Every item costs a bounded query or two, whatever the size of the domain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.urls import reverse
from django.utils.http import urlencode

from domains.models import Alias, Domain, DomainAdmin, Mailbox

# The role addresses every mail domain should receive (RFC 2142): offered as
# aliases when a domain is created (services.create_domain), and ticked here.
ROLE_ADDRESSES = ("postmaster", "abuse")


@dataclass(frozen=True)
class Item:
    label: str
    done: bool
    detail: str = ""  # what the state is, in a few words
    fix_url: str = ""  # where to fix it, when not done
    fix_label: str = ""
    optional: bool = False
    fix_needs_superadmin: bool = False  # the fix's page is a superadmin's
    order: int = 50  # where it stands in the list


ItemSource = Callable[[Domain], Item]

# What apps above this one add; each registered once, when Django starts.
_sources: list[ItemSource] = []


def add_item_source(source: ItemSource) -> None:
    """Put `source(domain) -> Item` on every domain's checklist (once however often called)."""
    if source not in _sources:
        _sources.append(source)


def _receivers(domain: Domain) -> dict[str, str]:
    """How each role address receives: "mailbox", "alias", "catch-all" or nothing.

    Two queries on unique columns: a few rows at most.
    """
    wanted = {f"{local}@{domain.name}": local for local in ROLE_ADDRESSES}
    found: dict[str, str] = {}
    for email in Mailbox.objects.filter(email__in=wanted, active=True).values_list(
            "email", flat=True):
        found[wanted[email]] = "a mailbox"
    catchall = False
    for source in Alias.objects.filter(source__in=[*wanted, f"@{domain.name}"],
                                       active=True).values_list("source", flat=True):
        if source.startswith("@"):
            catchall = True
        else:
            found.setdefault(wanted[source], "an alias")
    if catchall:
        for local in ROLE_ADDRESSES:
            found.setdefault(local, "the catch-all")
    return found


def _own_items(domain: Domain) -> list[Item]:
    items = []
    receivers = _receivers(domain)
    for order, local in enumerate(ROLE_ADDRESSES, start=30):
        how = receivers.get(local)
        new_alias = reverse("domains:alias-create", args=[domain.name])
        items.append(Item(
            f"{local}@{domain.name} receives mail", how is not None,
            f"through {how}" if how else "neither a mailbox nor an alias",
            f"{new_alias}?{urlencode({'local_part': local})}", f"Add {local}@ as an alias",
            order=order))
    has_mailbox = Mailbox.objects.filter(domain=domain).exists()
    items.append(Item(
        "A first mailbox", has_mailbox, "" if has_mailbox else "none yet",
        reverse("domains:mailbox-create", args=[domain.name]), "Create a mailbox", order=40))
    has_admin = DomainAdmin.objects.filter(domain=domain).exists()
    items.append(Item(
        "A domain admin, if someone else manages its mailboxes", has_admin,
        "" if has_admin else "only superadmins manage it",
        reverse("accounts:admin-create"), "Add a domain admin", optional=True,
        fix_needs_superadmin=True, order=60))
    return items


def checklist(domain: Domain) -> list[Item]:
    """Every item of the domain's checklist, in order."""
    items = _own_items(domain) + [source(domain) for source in _sources]
    return sorted(items, key=lambda item: item.order)
