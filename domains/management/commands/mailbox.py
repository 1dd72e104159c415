from typing import Any

from django.core.management.base import CommandParser

from domains import selectors, services
from domains.management.base import SubcommandCommand, actor
from domains.models import Mailbox
from domains.validators import format_size


class Command(SubcommandCommand):
    help = "Add, list, change, disable, enable and delete mailboxes."
    actions = {
        "add": "add a mailbox (password from stdin or a prompt)",
        "passwd": "set a mailbox's password (from stdin or a prompt)",
        "edit": "change a mailbox's name or quota",
        "list": "list mailboxes, optionally of one domain",
        "disable": "stop delivery and login for a mailbox",
        "enable": "restore delivery and login",
        "delete": "delete a mailbox; its mail stays on disk",
    }

    def add_action(self, parser: CommandParser, action: str) -> None:
        if action == "list":
            parser.add_argument("domain", nargs="?")
            parser.add_argument("--json", action="store_true")
            return
        parser.add_argument("email")
        if action in {"add", "passwd"}:
            parser.add_argument("--password-stdin", action="store_true",
                                help="read the password from the first line of stdin")
        if action in {"add", "edit"}:
            parser.add_argument("--name")
            parser.add_argument("--quota", help="e.g. 2G; 0 is unlimited")
        if action == "add":
            parser.add_argument("--disabled", action="store_true")

    def do_add(self, **o: Any) -> None:
        password = self.read_password(o)
        mailbox = services.create_mailbox(
            actor=actor(), email=o["email"], password=password, name=o["name"] or "",
            quota=o["quota"], active=not o["disabled"],
        )
        self.stdout.write(f"added {mailbox.email} (quota {format_size(mailbox.quota)})")

    def do_passwd(self, **o: Any) -> None:
        mailbox = selectors.mailbox_by_email(o["email"])
        services.set_mailbox_password(actor=actor(), mailbox=mailbox,
                                      password=self.read_password(o))
        self.stdout.write(f"password changed for {mailbox.email}")

    def do_edit(self, **o: Any) -> None:
        mailbox = services.update_mailbox(
            actor=actor(), mailbox=selectors.mailbox_by_email(o["email"]),
            name=o["name"], quota=o["quota"])
        self.stdout.write(f"changed {mailbox.email}")

    def do_list(self, **o: Any) -> None:
        mailboxes = Mailbox.objects.order_by("email")
        if o["domain"]:
            mailboxes = mailboxes.filter(domain=selectors.domain_by_name(o["domain"]))
        rows = (
            {"email": m.email, "name": m.name, "quota": m.quota, "active": m.active,
             "created": m.created.isoformat(timespec="seconds")}
            for m in mailboxes.only("email", "name", "quota", "active", "created").iterator()
        )
        self.emit(rows, ["email", "active", "quota", "name"], o["json"])

    def do_disable(self, **o: Any) -> None:
        mailbox = services.set_mailbox_active(
            actor=actor(), mailbox=selectors.mailbox_by_email(o["email"]), active=False)
        self.stdout.write(f"disabled {mailbox.email}")

    def do_enable(self, **o: Any) -> None:
        mailbox = services.set_mailbox_active(
            actor=actor(), mailbox=selectors.mailbox_by_email(o["email"]), active=True)
        self.stdout.write(f"enabled {mailbox.email}")

    def do_delete(self, **o: Any) -> None:
        mailbox = selectors.mailbox_by_email(o["email"])
        path = services.delete_mailbox(actor=actor(), mailbox=mailbox)
        self.stdout.write(f"deleted {mailbox.email}; mail kept on disk: {path}")
