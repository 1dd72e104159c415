"""What counts as a change between two checks of a domain: one answer for the page and the report.

The domain page (dnscheck.selectors) and the daily report (dnscheck.report)
show the same moves; both ask `compare` so that they never disagree.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

from dnscheck.models import Verdict

Key = TypeVar("Key", bound=Hashable)

WORSE, BETTER, UNCHECKED, NEW, GONE = "worse", "better", "unchecked", "new", "gone"
# How changes sort: worse first, then better, then what could not be checked
# (then or now), then results that appeared or went away.
ORDER = {WORSE: 0, BETTER: 1, UNCHECKED: 2, NEW: 3, GONE: 4}


def change_kind(before: int | None, after: int | None) -> str | None:
    """How one result moved between two runs; None when it did not.

    `before` None: the result is new; `after` None: it went away.

    An unknown means the check could not tell (a timeout, a SERVFAIL): it
    says nothing about the record, so any move to or from unknown is
    UNCHECKED, neither better nor worse. A result that went away is GONE
    whatever it said: a check that stopped asking (a DNSBL zone taken out of
    the settings, an address no longer ours) fixed nothing.
    """
    if after is None:
        return None if before is None else GONE
    if before is None:
        if after == Verdict.OK:
            return NEW
        return UNCHECKED if after == Verdict.UNKNOWN else WORSE
    if before == after:
        return None
    if Verdict.UNKNOWN in (before, after):
        return UNCHECKED
    return WORSE if after > before else BETTER


def compare(before: Mapping[Key, int], after: Mapping[Key, int]) -> list[tuple[Key, str]]:
    """The results whose verdict moved, each with its kind, keyed as the caller keys them.

    In `after`'s order, then the results gone from `before` in its order.
    """
    moved = []
    for key, verdict in after.items():
        kind = change_kind(before.get(key), verdict)
        if kind is not None:
            moved.append((key, kind))
    moved.extend((key, GONE) for key in before if key not in after)
    return moved
