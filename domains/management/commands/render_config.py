from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from domains import mailconfig


class Command(BaseCommand):
    help = (
        "Write the Postfix and Dovecot configuration for mailadmin's tables into DIR "
        "(postfix/, dovecot/). Only changed files are rewritten; installed files keep "
        "their owner and mode."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, type=Path, help="directory to write into")
        parser.add_argument("--database-url",
                            help="what the daemons connect to (default: "
                                 "MAILADMIN_DAEMON_DATABASE_URL, else the panel's database "
                                 "as user mailadmin_ro)")

    def handle(self, *args: Any, **options: Any) -> None:
        out = Path(options["out"])
        try:
            database = mailconfig.daemon_database(options["database_url"])
            files = mailconfig.render(mailconfig.RenderOptions(database=database))
            changed = mailconfig.write_tree(files, out)
        except OSError as exc:
            raise CommandError(f"cannot write to {out}: {exc.strerror}") from None
        except (ImproperlyConfigured, ValueError) as exc:
            raise CommandError(str(exc)) from None
        for path in changed:
            self.stdout.write(f"wrote {path}")
        if not changed:
            self.stdout.write(f"{out}: nothing changed")
