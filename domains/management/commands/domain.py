from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from core.commands import SubcommandCommand, actor, one_line
from core.errors import codes
from domains import selectors, services
from domains.validators import format_limit


class Command(SubcommandCommand):
    help = "Add, list, change, disable, enable and delete mail domains."
    actions = {
        "add": "add a domain",
        "edit": "change a domain's description and limits",
        "list": "list domains with their usage",
        "disable": "stop delivery and login for the whole domain",
        "enable": "restore delivery and login",
        "delete": "delete a domain (with --force, also its mailboxes; mail stays on disk)",
    }

    def add_action(self, parser: CommandParser, action: str) -> None:
        if action == "list":
            parser.add_argument("--json", action="store_true")
            return
        parser.add_argument("name")
        if action in {"add", "edit"}:
            parser.add_argument("--description")
            parser.add_argument("--max-mailboxes", type=int, help="0 is no limit")
            parser.add_argument("--max-aliases", type=int, help="0 is no limit")
            parser.add_argument("--max-quota", help="total for all mailboxes, e.g. 10G")
            parser.add_argument("--default-quota", help="per new mailbox, e.g. 1G")
        if action == "add":
            parser.add_argument("--disabled", action="store_true")
            parser.add_argument(
                "--kept-maildirs", choices=services.KEPT_MAILDIR_CHOICES,
                help="Maildirs still kept from an earlier domain of this name: reserve their "
                     "addresses, or record them as removed from the mail host")
        if action == "delete":
            parser.add_argument("--force", action="store_true",
                                help="also delete its mailboxes, aliases and alias domains")

    def do_add(self, **o: Any) -> None:
        try:
            domain = services.create_domain(
                actor=actor(), name=o["name"], description=o["description"] or "",
                max_mailboxes=o["max_mailboxes"] or 0, max_aliases=o["max_aliases"] or 0,
                max_quota=o["max_quota"] or 0, default_quota=o["default_quota"] or 0,
                active=not o["disabled"], kept_maildirs=o["kept_maildirs"] or "",
            )
        except ValidationError as exc:
            if "earlier_kept_maildirs" not in codes(exc):
                raise
            raise CommandError(
                f"{one_line(exc)} Add --kept-maildirs reserve or --kept-maildirs remove "
                "(`mailbox kept` lists them)."
            ) from None
        self.stdout.write(f"added {domain.name}")

    def do_edit(self, **o: Any) -> None:
        domain = services.update_domain(
            actor=actor(), domain=selectors.domain_by_name(o["name"]),
            description=o["description"], max_mailboxes=o["max_mailboxes"],
            max_aliases=o["max_aliases"], max_quota=o["max_quota"],
            default_quota=o["default_quota"],
        )
        self.stdout.write(f"changed {domain.name}")

    def do_list(self, **o: Any) -> None:
        rows = (
            {
                "name": d.name, "active": d.active, "description": d.description,
                "mailboxes": d.mailbox_count,  # type: ignore[attr-defined]
                "max_mailboxes": d.max_mailboxes,
                "aliases": d.alias_count,  # type: ignore[attr-defined]
                "max_aliases": d.max_aliases,
                "max_quota": d.max_quota, "default_quota": d.default_quota,
                "quota": f"{format_limit(d.default_quota)}/{format_limit(d.max_quota)}",
            }
            for d in selectors.domains_with_usage().iterator()
        )
        self.emit(rows, ["name", "active", "mailboxes", "aliases", "quota", "description"],
                  o["json"])

    def do_disable(self, **o: Any) -> None:
        domain = services.set_domain_active(
            actor=actor(), domain=selectors.domain_by_name(o["name"]), active=False)
        self.stdout.write(f"disabled {domain.name}")

    def do_enable(self, **o: Any) -> None:
        domain = services.set_domain_active(
            actor=actor(), domain=selectors.domain_by_name(o["name"]), active=True)
        self.stdout.write(f"enabled {domain.name}")

    def do_delete(self, **o: Any) -> None:
        domain = selectors.domain_by_name(o["name"])
        kept = services.delete_domain(actor=actor(), domain=domain, force=o["force"])
        self.stdout.write(f"deleted {domain.name}")
        for path in kept:
            self.stdout.write(f"mail kept on disk: {path}")
