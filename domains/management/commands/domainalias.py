from typing import Any

from django.core.management.base import CommandParser

from core.commands import SubcommandCommand, actor
from domains import selectors, services
from domains.models import AliasDomain


class Command(SubcommandCommand):
    help = "Alias domains: every address of the target domain also receives at the alias."
    actions = {
        "add": "add an alias domain: ALIAS TARGET",
        "list": "list alias domains",
        "disable": "stop an alias domain from receiving",
        "enable": "let an alias domain receive again",
        "delete": "delete an alias domain",
    }

    def add_action(self, parser: CommandParser, action: str) -> None:
        if action == "list":
            parser.add_argument("--json", action="store_true")
            return
        parser.add_argument("name")
        if action == "add":
            parser.add_argument("target")

    def do_add(self, **o: Any) -> None:
        alias_domain = services.create_alias_domain(actor=actor(), name=o["name"],
                                                    target=o["target"])
        self.stdout.write(f"added {alias_domain.name} -> {alias_domain.target.name}")

    def do_list(self, **o: Any) -> None:
        rows = (
            {"name": a.name, "target": a.target.name, "active": a.active}
            for a in AliasDomain.objects.select_related("target").order_by("name").iterator()
        )
        self.emit(rows, ["name", "active", "target"], o["json"])

    def do_disable(self, **o: Any) -> None:
        alias_domain = services.set_alias_domain_active(
            actor=actor(), alias_domain=selectors.alias_domain_by_name(o["name"]), active=False)
        self.stdout.write(f"disabled {alias_domain.name}")

    def do_enable(self, **o: Any) -> None:
        alias_domain = services.set_alias_domain_active(
            actor=actor(), alias_domain=selectors.alias_domain_by_name(o["name"]), active=True)
        self.stdout.write(f"enabled {alias_domain.name}")

    def do_delete(self, **o: Any) -> None:
        alias_domain = selectors.alias_domain_by_name(o["name"])
        services.delete_alias_domain(actor=actor(), alias_domain=alias_domain)
        self.stdout.write(f"deleted {alias_domain.name}")
