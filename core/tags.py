"""Tag-list records (RFC 6376 section 3.2): `name=value` pairs separated by `;`.

DKIM key records use this syntax, and so do DMARC, MTA-STS and TLS-RPT
records: one parser for all of them, below every app that reads one.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class BadTagList(ValueError):
    """A record that is not a tag list; the message is one line for the admin."""


def parse_tags(record: str) -> dict[str, str]:
    """The tag=value pairs of `record`, values stripped; empty parts are skipped.

    Raises BadTagList on a malformed pair or a repeated tag.
    """
    result: dict[str, str] = {}
    for part in record.split(";"):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            raise BadTagList(f"malformed tag {part[:40]!r}")
        if name in result:
            raise BadTagList(f"tag {name!r} appears twice")
        result[name] = value.strip()
    return result
