"""`manage.py dkim set|show|remove`: the DKIM key each domain should publish."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import SubcommandCommand, actor
from dkim import records, services
from dkim import selectors as keys
from domains import selectors


class Command(SubcommandCommand):
    help = "Set, show and remove the DKIM public key a domain should publish in DNS."
    actions = {
        "set": "set DOMAIN SELECTOR, key from --key-file or stdin (base64, PEM or TXT record)",
        "show": "show the key and the TXT record to publish",
        "remove": "forget the domain's key",
    }

    def add_action(self, parser: CommandParser, action: str) -> None:
        parser.add_argument("domain")
        if action == "set":
            parser.add_argument("selector")
            parser.add_argument("--key-file", help="file with the public key (default: stdin)")

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

    def do_show(self, **o: Any) -> None:
        domain = selectors.domain_by_name(o["domain"])
        key = keys.active_key(domain)
        if key is None:
            raise CommandError(f"{domain.name} has no DKIM key set")
        self.stdout.write(records.txt_record(key.selector, domain.name, key.algorithm,
                                             key.public_key))

    def do_remove(self, **o: Any) -> None:
        domain = selectors.domain_by_name(o["domain"])
        services.remove_key(actor=actor(), domain=domain)
        self.stdout.write(f"removed the DKIM key of {domain.name}")
