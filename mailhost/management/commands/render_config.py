from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailhost import render
from mailhost.models import MailHost


class Command(BaseCommand):
    help = (
        "Write the Postfix, Dovecot and Rspamd configuration for mailadmin's tables into "
        "DIR (postfix/, dovecot/, rspamd/local.d/). Only changed files are rewritten; "
        "installed files keep their owner and mode."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, type=Path, help="directory to write into")
        parser.add_argument("--database-url",
                            help="what the daemons connect to (default: the mail host's "
                                 "daemon database, else the panel's database as user "
                                 "mailadmin_ro)")

    def handle(self, *args: Any, **options: Any) -> None:
        out = Path(options["out"])
        try:
            host = MailHost.current()
            database = render.daemon_database(host, options["database_url"])
            files = render.render(render.RenderOptions(host=host, database=database,
                                                        with_rspamd=True))
            changed = render.write_tree(files, out)
        except OSError as exc:
            raise CommandError(f"cannot write to {out}: {exc.strerror}") from None
        except (ImproperlyConfigured, ValueError) as exc:
            raise CommandError(str(exc)) from None
        for path in changed:
            self.stdout.write(f"wrote {path}")
        if not changed:
            self.stdout.write(f"{out}: nothing changed")
