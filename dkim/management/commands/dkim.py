"""`manage.py dkim ...`: the DKIM keys of each domain, through their lifecycle."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import SubcommandCommand, actor
from dkim import publish, records, rotation, services
from dkim import selectors as keys
from dkim.models import DkimKey
from domains import selectors


class Command(SubcommandCommand):
    help = "Generate, show, check and move through their lifecycle a domain's DKIM keys."
    actions = {
        "generate": "a new key under a new dated selector, made on the mail host "
                    "(RSA 2048 by default; ed25519 only beside an RSA key)",
        "show": "every key of the domain, with the record each should publish",
        "check-published": "look for pending and revoked keys' records on the authoritative "
                           "servers now (every domain, or DOMAIN)",
        "activate": "published -> active (the domain's active key of that algorithm retires)",
        "retire": "active -> retiring, with no successor",
        "revoke": "retiring -> revoked after the grace period (pending or published: at once)",
        "set": "set DOMAIN SELECTOR, a key made elsewhere, from --key-file or stdin "
               "(base64, PEM or TXT record)",
        "remove": "forget the domain's active key made elsewhere",
        "rotate": "start a rotation: a new key for each algorithm the domain signs with "
                  "(the rotation tick publishes, activates, applies and retires)",
        "advance": "run the rotation tick now (every domain, or DOMAIN): each key one "
                   "safe step further",
        "rotation": "rotation DOMAIN DAYS|off|default: the domain's unattended rotation",
    }

    def add_action(self, parser: CommandParser, action: str) -> None:
        if action in ("check-published", "advance"):
            parser.add_argument("domain", nargs="?")
            return
        parser.add_argument("domain")
        if action in ("set", "activate", "retire", "revoke"):
            parser.add_argument("selector")
        if action == "rotation":
            parser.add_argument("days", help="days between rotations (at least 14), off, "
                                             "or default")
        if action == "set":
            parser.add_argument("--key-file", help="file with the public key (default: stdin)")
        if action == "generate":
            parser.add_argument("--algorithm", choices=["rsa", "ed25519"], default="rsa")
            parser.add_argument("--bits", type=int, default=None,
                                help="RSA: 2048 (default), 3072 or 4096")

    def _key(self, o: dict[str, Any]) -> DkimKey:
        domain = selectors.domain_by_name(o["domain"])
        key = keys.key_by_selector(domain, o["selector"])
        if key is None:
            raise CommandError(f"{domain.name} has no DKIM key {o['selector']!r}")
        return key

    def _show(self, key: DkimKey) -> None:
        self.stdout.write(f"{key} {key.state}{' (made elsewhere)' if key.external else ''}, "
                          f"{key.algorithm} {key.bits} bits")
        if key.problem:
            self.stdout.write(f"  status: {key.problem}")
        if key.state == DkimKey.State.REVOKED:
            self.stdout.write("  publish the revoked form:\n  "
                              + records.revoked_record(key.selector, key.domain_name,
                                                       key.algorithm))
        elif key.public_key and key.state != DkimKey.State.GONE:
            parts = records.record_parts(key.selector, key.domain_name, key.algorithm,
                                         key.public_key)
            self.stdout.write("  " + records.txt_record(key.selector, key.domain_name,
                                                        key.algorithm, key.public_key))
            self.stdout.write(f"  host: {parts['host']}\n  type: {parts['type']}\n"
                              f"  value: {parts['value']}")
        elif key.state == DkimKey.State.PENDING:
            self.stdout.write("  the mail host has not made it yet")

    def do_generate(self, **o: Any) -> None:
        domain = selectors.domain_by_name(o["domain"])
        key = services.generate(actor=actor(), domain=domain, algorithm=o["algorithm"],
                                bits=o["bits"])
        key.refresh_from_db()
        self._show(key)

    def do_show(self, **o: Any) -> None:
        domain = selectors.domain_by_name(o["domain"])
        rows = keys.domain_keys(domain)
        if not rows:
            raise CommandError(f"{domain.name} has no DKIM key set")
        for key in rows:
            self._show(key)

    def do_check_published(self, **o: Any) -> None:
        ids = None
        if o["domain"]:
            ids = [selectors.domain_by_name(o["domain"]).pk]
        results = publish.check_keys(keys.keys_to_check(ids), actor=actor())
        if not results:
            self.stdout.write("no pending or revoked keys to look for")
        for key, seen in results:
            key.refresh_from_db()
            self.stdout.write(f"{key} {key.state}: {seen.status}"
                              + (f": {seen.reason}" if seen.reason else "")
                              + (f" ({key.problem})" if key.problem and not seen.reason else ""))

    def do_activate(self, **o: Any) -> None:
        key = services.activate(actor=actor(), key=self._key(o))
        self.stdout.write(f"{key} is active")

    def do_retire(self, **o: Any) -> None:
        key = services.retire(actor=actor(), key=self._key(o))
        self.stdout.write(f"{key} is retiring")

    def do_revoke(self, **o: Any) -> None:
        key = services.revoke(actor=actor(), key=self._key(o))
        self.stdout.write(f"{key} is revoked; publish:\n"
                          + records.revoked_record(key.selector, key.domain_name, key.algorithm))

    def do_set(self, **o: Any) -> None:
        domain = selectors.domain_by_name(o["domain"])
        if o["key_file"]:
            try:
                text = Path(o["key_file"]).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise CommandError(f"cannot read {o['key_file']}: {error}") from None
        else:
            try:
                text = sys.stdin.read()
            except UnicodeDecodeError:
                raise CommandError("the key on stdin is not valid UTF-8") from None
        key = services.set_key(actor=actor(), domain=domain, selector=o["selector"],
                               public_key=text)
        bits = records.key_bits(key.public_key, key.algorithm)
        self.stdout.write(f"set {key} ({key.algorithm}, {bits} bits)")
        if warning := records.weak_key_warning(key.algorithm, bits):
            self.stderr.write(f"warning: {warning}")

    def do_remove(self, **o: Any) -> None:
        domain = selectors.domain_by_name(o["domain"])
        services.remove_key(actor=actor(), domain=domain)
        self.stdout.write(f"removed the DKIM key of {domain.name}")

    def do_rotate(self, **o: Any) -> None:
        domain = selectors.domain_by_name(o["domain"])
        for key in services.rotate(actor=actor(), domain=domain):
            key.refresh_from_db()
            self._show(key)

    def do_advance(self, **o: Any) -> None:
        ids = [selectors.domain_by_name(o["domain"]).pk] if o["domain"] else None
        steps = rotation.advance(ids, actor=actor())
        self.stdout.write("\n".join(steps) if steps else "nothing to do")

    def do_rotation(self, **o: Any) -> None:
        domain = selectors.domain_by_name(o["domain"])
        text = o["days"].strip().lower()
        if text in ("default", "off"):
            days = None if text == "default" else 0
        elif text.isdigit():
            days = int(text)
        else:
            raise CommandError(f"{o['days']!r}: give a number of days, off or default")
        services.set_rotation(actor=actor(), domain=domain, days=days)
        current = services.rotation_days(domain)
        self.stdout.write(f"{domain.name}: " + (f"rotated every {current} days" if current
                                                 else "not rotated unattended"))
