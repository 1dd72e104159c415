from typing import Any

from django.core.management.base import CommandParser

from core.commands import SubcommandCommand, actor
from domains import selectors, services
from domains.models import Alias


class Command(SubcommandCommand):
    help = "Add, list, change and delete aliases (`@domain` is the catch-all)."
    actions = {
        "add": "add an alias: SOURCE DEST[,DEST...]",
        "edit": "replace an alias's destinations",
        "list": "list aliases, optionally of one domain",
        "disable": "stop an alias from delivering",
        "enable": "let an alias deliver again",
        "delete": "delete an alias",
    }

    def add_action(self, parser: CommandParser, action: str) -> None:
        if action == "list":
            parser.add_argument("domain", nargs="?")
            parser.add_argument("--json", action="store_true")
            return
        parser.add_argument("source", help="local@domain, or @domain for the catch-all")
        if action in {"add", "edit"}:
            parser.add_argument("destinations", help="comma-separated addresses")

    def do_add(self, **o: Any) -> None:
        alias = services.create_alias(actor=actor(), source=o["source"],
                                      destinations=o["destinations"], checked_domains=None)
        self.stdout.write(f"added {alias.source} -> {alias.destinations}")

    def do_edit(self, **o: Any) -> None:
        alias = services.update_alias(actor=actor(), alias=selectors.alias_by_source(o["source"]),
                                      destinations=o["destinations"], checked_domains=None)
        self.stdout.write(f"changed {alias.source} -> {alias.destinations}")

    def do_list(self, **o: Any) -> None:
        aliases = Alias.objects.order_by("source")
        if o["domain"]:
            aliases = aliases.filter(domain=selectors.domain_by_name(o["domain"]))
        rows = (
            {"source": a.source, "active": a.active, "destinations": a.destinations}
            for a in aliases.iterator()
        )
        self.emit(rows, ["source", "active", "destinations"], o["json"])

    def do_disable(self, **o: Any) -> None:
        alias = services.update_alias(actor=actor(), alias=selectors.alias_by_source(o["source"]),
                                      active=False, checked_domains=None)
        self.stdout.write(f"disabled {alias.source}")

    def do_enable(self, **o: Any) -> None:
        alias = services.update_alias(actor=actor(), alias=selectors.alias_by_source(o["source"]),
                                      active=True, checked_domains=None)
        self.stdout.write(f"enabled {alias.source}")

    def do_delete(self, **o: Any) -> None:
        alias = selectors.alias_by_source(o["source"])
        services.delete_alias(actor=actor(), alias=alias)
        self.stdout.write(f"deleted {alias.source}")
