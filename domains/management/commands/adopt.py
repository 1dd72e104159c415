from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from core.commands import actor
from domains import adopt


class Command(BaseCommand):
    help = (
        "Take over the domains/users/aliases tables of a server built from the classic "
        "recipe, in place: its Postfix and Dovecot queries keep working unchanged."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true",
                            help="only say what would change and what stops adoption")

    def handle(self, *args: Any, **options: Any) -> None:
        if adopt.already_managed():
            self.stdout.write("the mail tables are already managed by mailadmin")
            return
        try:
            plan = adopt.inspect() if options["check"] else adopt.adopt(actor=actor())
        except ValidationError as exc:
            raise CommandError("cannot adopt: " + "; ".join(exc.messages)) from None
        except DatabaseError as exc:
            raise CommandError(f"database error (run adopt again once fixed): {exc}") from None
        if plan.problems:
            raise CommandError("cannot adopt: " + "; ".join(plan.problems))
        for warning in plan.warnings():
            self.stdout.write(f"warning: {warning}")
        verb = "would" if options["check"] else "did"
        for change in plan.changes() or ["nothing to change in the mail tables"]:
            self.stdout.write(f"{verb}: {change}")
        counts = ", ".join(f"{n} {what}" for what, n in plan.counts.items())
        self.stdout.write(("ready to adopt: " if options["check"] else "adopted: ") + counts)
