from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from core.commands import SubcommandCommand, actor
from core.errors import codes
from domains import selectors, services
from domains.models import KeptMaildir, Mailbox
from domains.validators import format_limit, normalize_address


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
        "kept": "list the Maildirs of deleted mailboxes that are still kept on disk",
        "forget-maildir": "record that an address's kept Maildir was removed from disk",
        "purge-maildir": "have the mail host remove an address's kept Maildir now",
        "restore-maildir": "make a deleted mailbox again with its kept Maildir (password "
                           "from stdin or a prompt)",
        "costly-hashes": "list mailboxes whose password hash is over the MAILADMIN_MAX_* "
                         "cost bounds (Dovecot still verifies it: reset those passwords)",
    }

    def add_action(self, parser: CommandParser, action: str) -> None:
        if action in {"kept", "costly-hashes"}:
            parser.add_argument("--json", action="store_true")
            return
        if action == "list":
            parser.add_argument("domain", nargs="?")
            parser.add_argument("--json", action="store_true")
            return
        parser.add_argument("email")
        if action in {"add", "passwd", "restore-maildir"}:
            parser.add_argument("--password-stdin", action="store_true",
                                help="read the password from the first line of stdin")
        if action in {"add", "edit"}:
            parser.add_argument("--name")
            parser.add_argument("--quota", help="e.g. 2G; 0 is unlimited")
        if action == "add":
            parser.add_argument("--disabled", action="store_true")
            parser.add_argument("--reuse-kept-maildir", action="store_true",
                                help="give the new mailbox the mail kept from a deleted "
                                     "mailbox of the same address")

    def do_add(self, **o: Any) -> None:
        password = self.read_password(o)
        try:
            mailbox = services.create_mailbox(
                actor=actor(), email=o["email"], password=password, name=o["name"] or "",
                quota=o["quota"], active=not o["disabled"],
                reuse_kept_maildir=o["reuse_kept_maildir"],
            )
        except ValidationError as exc:
            kept = selectors.kept_maildir_of(o["email"])
            if kept is None or "maildir_kept" not in codes(exc):
                raise
            raise CommandError(
                f"the mail of a deleted mailbox {kept.address} is kept in {kept.path}: add "
                "--reuse-kept-maildir to give it to this mailbox, or remove the directory on "
                f"the mail host and run: manage.py mailbox forget-maildir {kept.address}"
            ) from None
        self.stdout.write(f"added {mailbox.email} (quota {format_limit(mailbox.quota)})")

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

    def do_kept(self, **o: Any) -> None:
        rows = (
            {"address": k.address, "path": k.path,
             "deleted": k.deleted_at.isoformat(timespec="seconds"),
             "expires": selectors.kept_maildir_expiry(k).isoformat(timespec="seconds"),
             "state": ("removal failed: " + k.removal_error if k.removal_error
                       else "being removed" if k.purge_requested_at else "kept")}
            for k in selectors.kept_maildirs().iterator()
        )
        self.emit(rows, ["address", "deleted", "path", "expires", "state"], o["json"])

    def do_purge_maildir(self, **o: Any) -> None:
        kept = services.purge_kept_maildir(actor=actor(), kept=self.kept_of(o["email"]))
        self.stdout.write(f"the mail host removes {kept.path}")

    def do_restore_maildir(self, **o: Any) -> None:
        kept = self.kept_of(o["email"])
        mailbox = services.restore_kept_maildir(actor=actor(), kept=kept,
                                                password=self.read_password(o))
        self.stdout.write(f"restored {mailbox.email} with the mail kept in {kept.path}")

    @staticmethod
    def kept_of(address: str) -> KeptMaildir:
        """The latest open kept Maildir of `address`, whatever became of its domain."""
        kept = selectors.kept_maildirs().filter(address=normalize_address(address)).order_by(
            "-deleted_at").first()
        if kept is None:
            raise CommandError(f"no kept Maildir is recorded for {address}")
        return kept

    def do_costly_hashes(self, **o: Any) -> None:
        rows = ({"email": email, "scheme": scheme, "cost": cost}
                for email, scheme, cost in selectors.costly_hashes())
        self.emit(rows, ["email", "scheme", "cost"], o["json"])

    def do_forget_maildir(self, **o: Any) -> None:
        for path in services.forget_kept_maildir(actor=actor(), address=o["email"]):
            self.stdout.write(f"recorded as removed: {path}")

    def do_delete(self, **o: Any) -> None:
        mailbox = selectors.mailbox_by_email(o["email"])
        path = services.delete_mailbox(actor=actor(), mailbox=mailbox)
        self.stdout.write(f"deleted {mailbox.email}; mail kept on disk: {path}")
