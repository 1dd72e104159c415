"""App-password usage lines, as the login check writes them, read strictly.

Each line is "ID IP SERVICE UNIXTIME" (deploy/dovecot/mailadmin-login-cache.lua):
the app password's row id, the client's address (`-` when the login had
none, e.g. `doveadm auth test`), Dovecot's service name and the time of the
login. Dovecot's user writes the file, not the panel: a line that does not
read exactly so is skipped and counted, never an error for the others.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

# Dovecot's %s -> the service the panel records (Postfix's SMTP AUTH asks as smtp).
SERVICES = {"imap": "imap", "smtp": "smtp", "submission": "smtp", "sieve": "sieve"}
MAX_ID = 10**18
# Times outside these bounds are not a login's (a clock far off, or garbage).
EARLIEST = 946684800  # 2000-01-01
LATEST = 4102444800  # 2100-01-01


@dataclass(frozen=True)
class Use:
    when: datetime
    ip: str | None
    service: str


@dataclass
class Parsed:
    # The newest use of each app password id.
    newest: dict[int, Use]
    lines: int = 0
    skipped: int = 0


def parse_line(line: str) -> tuple[int, Use] | None:
    parts = line.split()
    if len(parts) != 4:
        return None
    raw_id, raw_ip, raw_service, raw_time = parts
    if not (raw_id.isascii() and raw_id.isdigit() and raw_time.isascii() and raw_time.isdigit()):
        return None
    pk, stamp = int(raw_id), int(raw_time)
    service = SERVICES.get(raw_service)
    if not 0 < pk < MAX_ID or not EARLIEST <= stamp < LATEST or service is None:
        return None
    ip: str | None = None
    if raw_ip != "-":
        try:
            ip = str(ipaddress.ip_address(raw_ip))
        except ValueError:
            return None
    return pk, Use(datetime.fromtimestamp(stamp, UTC), ip, service)


def parse(lines: Iterable[str]) -> Parsed:
    """The newest use per app password; later lines win a tie (the file's order)."""
    parsed = Parsed(newest={})
    for line in lines:
        if not line.strip():
            continue
        parsed.lines += 1
        read = parse_line(line)
        if read is None:
            parsed.skipped += 1
            continue
        pk, use = read
        current = parsed.newest.get(pk)
        if current is None or use.when >= current.when:
            parsed.newest[pk] = use
    return parsed
