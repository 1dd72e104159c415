"""The Sieve script for a mailbox's rules (RFC 5228, 5230 vacation, 5260 date, 3894 copy).

Every value the person typed reaches the script only inside a quoted string,
with `\\` and `"` escaped (RFC 5228 2.4.2): nothing typed can end the string
and add a command. The services refuse control characters before this.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    subject: str
    text: str
    days: int
    start: datetime.date | None
    end: datetime.date | None
    addresses: Sequence[str]


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(quoted(v) for v in values) + "]"


# Pigeonhole's vacation skips these already (mailing-list headers, Precedence
# bulk/list/junk, Auto-Submitted, MAILER-DAEMON and owner-/-request senders);
# saying so here keeps the rule when another Sieve implementation runs the script.
NOT_TO_LISTS_OR_BULK = (
    'not anyof (exists ["list-id", "list-unsubscribe", "list-post", "list-help"], '
    'header :is "precedence" ["bulk", "list", "junk"], '
    'allof (exists "auto-submitted", not header :is "auto-submitted" "no"))'
)


def script(*, reply: Reply | None, forward_to: Sequence[str], keep: bool) -> str:
    """The whole script; empty when there is nothing to do."""
    if reply is None and not forward_to:
        return ""
    require = []
    lines: list[str] = []
    if reply is not None:
        require += ["vacation"]
        tests = [NOT_TO_LISTS_OR_BULK]
        if reply.start or reply.end:
            require += ["date", "relational"]
        if reply.start:
            tests.append(f'currentdate :value "ge" "date" {quoted(reply.start.isoformat())}')
        if reply.end:
            tests.append(f'currentdate :value "le" "date" {quoted(reply.end.isoformat())}')
        addresses = f":addresses {_string_list(reply.addresses)} " if reply.addresses else ""
        lines += [
            f"if allof ({', '.join(tests)}) {{",
            f"  vacation :days {reply.days} {addresses}:subject {quoted(reply.subject)}",
            f"    {quoted(reply.text)};",
            "}",
        ]
    if forward_to:
        if keep:
            require += ["copy"]
        copy = ":copy " if keep else ""
        lines += [f"redirect {copy}{quoted(address)};" for address in forward_to]
    head = f"require {_string_list(require)};" if require else ""
    return "\n".join(["# Written by mailadmin from the mailbox's auto-reply and forwarding.",
                      head, *lines, ""])
