"""What counts as a change between two checks of a domain: one answer for the page and the report.

The health page (dnscheck.selectors, templates/dnscheck/_health.html) and the
daily report (dnscheck.report, templates/dnscheck/email/) both build their
changes here, so they never disagree. A result is identified from one run to
the next by (check name, subject); `classify` decides how one such result
moved:

- error -> warning or ok, warning -> ok: BETTER.
- ok -> warning or error, warning -> error: WORSE.
- anything -> unknown: UNCHECKED ("could not check"). An unknown is a
  timeout or a SERVFAIL: it says nothing about the record, so it is neither
  better nor worse, and never green.
- unknown -> a known verdict: judged against the last known verdict of that
  result in earlier runs (`last_known`), BETTER or WORSE as above. When there
  is none, or it is the same as now, CHECKED ("now checked"): the check can
  tell again, and nothing moved against what was last seen.
- A result that appears: NEW when ok, WORSE when warning or error (a new
  DNSBL zone that lists us matters as much as a record that broke),
  UNCHECKED when unknown.
- A result that disappears: GONE ("no longer checked"), whatever it said,
  even while other results of the same check remain. The engine keys a
  result by what it looked at, so a fixed problem keeps its key and shows
  as BETTER; a key that vanishes means the thing is no longer looked at (a
  DNSBL zone taken out of the settings, a DKIM selector replaced, an
  address no longer ours), which fixed nothing. A warning that is now ok is
  therefore BETTER only under the same key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from dnscheck.models import Verdict

Key = tuple[str, str]  # (check name, subject)

WORSE, BETTER, UNCHECKED, CHECKED, NEW, GONE = (
    "worse", "better", "unchecked", "checked", "new", "gone")
# How changes sort: worse first, then better, then what could not be checked,
# then what can be checked again, then results that appeared or went away.
ORDER = {WORSE: 0, BETTER: 1, UNCHECKED: 2, CHECKED: 3, NEW: 4, GONE: 5}
TITLES = {WORSE: "Worse", BETTER: "Better", UNCHECKED: "Could not check",
          CHECKED: "Now checked", NEW: "New checks", GONE: "No longer checked"}
# The page's words for the kinds (also its CSS classes); new and gone are
# neither better nor worse and show as "unchanged" with their own wording.
DIRECTIONS = {WORSE: "worsened", BETTER: "improved", UNCHECKED: "unchecked",
              CHECKED: "checked"}
UNCHANGED = "unchanged"
# The report's colours of verdicts; inline styles only: mail clients drop
# style sheets and must not fetch anything.
COLOURS = {Verdict.OK: "#1b7a3a", Verdict.UNKNOWN: "#5f6368",
           Verdict.WARNING: "#a15c00", Verdict.ERROR: "#b3261e"}


def colour(verdict: int | None) -> str:
    # No verdict (never checked, no result) looks like unknown: grey.
    return COLOURS[Verdict(verdict) if verdict is not None else Verdict.UNKNOWN]


def classify(before: int | None, after: int | None, last_known: int | None = None) -> str | None:
    """How one result moved between two runs (see the module docstring); None when it did not.

    `before` None: the result is new; `after` None: it went away. `last_known`
    is the result's last verdict other than unknown before `before`, used
    only when `before` is unknown.
    """
    if after is None:
        return None if before is None else GONE
    if before is None:
        if after == Verdict.OK:
            return NEW
        return UNCHECKED if after == Verdict.UNKNOWN else WORSE
    if before == after:
        return None
    if after == Verdict.UNKNOWN:
        return UNCHECKED
    if before == Verdict.UNKNOWN:
        if last_known is None or last_known == Verdict.UNKNOWN or last_known == after:
            return CHECKED
        before = last_known
    return WORSE if after > before else BETTER


class Seen(NamedTuple):
    """One stored result as a comparison needs it."""

    verdict: int
    reason: str = ""
    record: str = ""
    position: int = 0  # its place in its run: the engine's order of checks


@dataclass(frozen=True)
class Change:
    """One result that moved between two runs, as both the page and the report show it."""

    check_name: str
    subject: str
    kind: str  # WORSE, BETTER, UNCHECKED, CHECKED, NEW or GONE
    before: Verdict | None  # None: no result for this check before
    after: Verdict | None  # None: the check yields no result any more
    reason: str  # the current reason (the last one, for a result that went away)
    record: str = ""  # what to publish, for a change for the worse
    position: int = 0
    domain: str = ""

    @property
    def presence(self) -> str:
        """"new", "gone" or "changed": whether the result appeared, went away, or moved."""
        if self.before is None:
            return "new"
        return "gone" if self.after is None else "changed"

    @property
    def direction(self) -> str:
        return DIRECTIONS.get(self.kind, UNCHANGED)

    @property
    def worsened(self) -> bool:
        return self.kind == WORSE

    @property
    def improved(self) -> bool:
        return self.kind == BETTER

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    @property
    def check_label(self) -> str:
        return f"{self.check_name} {self.subject}" if self.subject else self.check_name

    @property
    def record_lines(self) -> list[str]:
        return self.record.splitlines()

    @property
    def before_label(self) -> str:
        return self.before.label if self.before is not None else "none"

    @property
    def after_label(self) -> str:
        return self.after.label if self.after is not None else "none"

    @property
    def before_colour(self) -> str:
        return colour(self.before)

    @property
    def after_colour(self) -> str:
        return colour(self.after)


def between(before: Mapping[Key, Seen], after: Mapping[Key, Seen], *,
            last_known: Mapping[Key, int] | None = None, domain: str = "") -> list[Change]:
    """The results whose verdict moved from `before` to `after`, each classified.

    In `after`'s order, then the results gone from `before` in its order
    (their position after every current one).
    """
    known = last_known or {}
    changes = []
    for key, now in after.items():
        was = before.get(key)
        kind = classify(was.verdict if was is not None else None, now.verdict, known.get(key))
        if kind is None:
            continue
        changes.append(Change(
            check_name=key[0], subject=key[1], kind=kind,
            before=Verdict(was.verdict) if was is not None else None,
            after=Verdict(now.verdict), reason=now.reason,
            record=now.record if kind == WORSE else "", position=now.position, domain=domain))
    for key, was in before.items():
        if key not in after:
            changes.append(Change(
                check_name=key[0], subject=key[1], kind=GONE, before=Verdict(was.verdict),
                after=None, reason=was.reason, position=len(after) + was.position,
                domain=domain))
    return changes


def unknown_then_known(before: Mapping[Key, Seen], after: Mapping[Key, Seen]) -> set[Key]:
    """The results that were unknown in `before` and are known now: those need `last_known`."""
    return {key for key, now in after.items()
            if now.verdict != Verdict.UNKNOWN and (was := before.get(key)) is not None
            and was.verdict == Verdict.UNKNOWN}

