"""Move the panel from its embedded SQLite database to MariaDB (README, "Moving to MariaDB")."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.dbmove import Moved, MoveError, move, shown_url, target_entry, target_url
from mailhost.models import THIS_HOST, MailHost

# What Postfix and Dovecot read, and the one table Dovecot writes (quota_clone):
# the grants of the README's "The daemons' read-only user" and deploy/install.
DAEMON_READS = ("domains", "users", "aliases", "alias_domains", "app_passwords", "sieve_scripts")
DAEMON_WRITES = "quota_usage"
DAEMON_USER = "mailadmin_ro"


class Command(BaseCommand):
    help = (
        "Copy every table of the panel's SQLite database (sessions excepted) into an "
        "empty MariaDB database, all or nothing, keeping every key and password hash; "
        "check the row counts and print what to change next. Stop the panel, its "
        "workers and beat first. The SQLite database is not changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--to",
            required=True,
            metavar="URL",
            help="mysql://USER@HOST:PORT/NAME, a database created empty "
            "(utf8mb4); migrate runs on it first",
        )
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the database password from stdin (else a prompt on a terminal, else none)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        url = str(options["to"])
        try:
            target_entry(url)  # a bad URL is refused before any prompt
            password = self.password(url, bool(options["password_stdin"]))
            moved = move(url=url, password=password, progress=self.progress)
        except MoveError as exc:
            raise CommandError(f"{exc}; nothing was moved") from None
        except KeyboardInterrupt:
            raise CommandError("interrupted; nothing was moved") from None
        self.report(url, password, moved)

    def password(self, url: str, from_stdin: bool) -> str | None:
        if urlsplit(url).password is not None:
            return None
        if from_stdin:
            return sys.stdin.readline().rstrip("\r\n") or None
        if sys.stdin.isatty():
            user = urlsplit(url).username or ""
            return getpass.getpass(f"Password of {user} (empty for none): ") or None
        return None

    def progress(self, line: str) -> None:
        self.stderr.write(line)

    def report(self, url: str, password: str | None, moved: Moved) -> None:
        entry = target_entry(url)
        source = settings.DATABASES["default"]["NAME"]
        panel_url = shown_url(target_url(url, password))
        out = self.stdout.write
        out(
            f"Moved {source} to {panel_url} in {moved.seconds:.1f} s. "
            "Rows in MariaDB, each count equal to SQLite's:"
        )
        width = max(len(name) for name, _ in moved.counts)
        for name, rows in sorted(moved.counts):
            out(f"  {name:<{width}}  {rows:>9}")
        for name, rows, why in moved.skipped:
            out(f"Not copied: {name} ({rows} row{'' if rows == 1 else 's'}; {why}).")
        for what in moved.left_behind:
            out(f"Not copied: {what}, which no model of the panel names.")
        out("The SQLite database is unchanged: keep it until the panel runs on MariaDB.")
        out("")
        out('Next, in this order (README, "Moving to MariaDB"):')
        for number, step in enumerate(self.next_steps(entry, panel_url), start=1):
            out(f"{number}. " + step[0])
            for line in step[1:]:
                out("     " + line)

    def next_steps(self, entry: dict[str, Any], panel_url: str) -> list[list[str]]:
        name, host, port = entry["NAME"], entry["HOST"], entry["PORT"]
        local = host in ("127.0.0.1", "localhost", "::1")
        hosts = ("127.0.0.1", "localhost") if local else ("MAIL-HOST-ADDRESS",)
        who = ", ".join(f"'{DAEMON_USER}'@'{h}'" for h in hosts)
        grants = [
            f"CREATE USER '{DAEMON_USER}'@'{h}' IDENTIFIED BY 'daemon-secret';" for h in hosts
        ]
        grants += [f"GRANT SELECT ON `{name}`.`{table}` TO {who};" for table in DAEMON_READS]
        grants.append(f"GRANT SELECT, INSERT, UPDATE ON `{name}`.`{DAEMON_WRITES}` TO {who};")
        daemon_url = f"mysql://{DAEMON_USER}@{host}:{port}/{name}"
        row = (
            MailHost.objects.filter(pk=THIS_HOST).values_list("daemon_database", flat=True).first()
            or ""
        )
        steps = [
            [
                "The daemons' read-only user, as MariaDB's root (deploy/install makes the same "
                "from MAILADMIN_DAEMON_DATABASE_URL):",
                *grants,
            ],
            [
                "In the panel's environment (/etc/mailadmin/env), then start the panel, its "
                "workers and beat again:",
                f"MAILADMIN_DATABASE_URL={panel_url}",
                f"MAILADMIN_DAEMON_DATABASE_URL=mysql://{DAEMON_USER}:daemon-secret@{host}:"
                f"{port}/{name}",
                "Keep MAILADMIN_DATA_DIR: it holds the secret key. Sessions were not moved: "
                "everyone signs in again.",
            ],
        ]
        if not row.startswith(("mysql:", "mariadb:")):
            steps.append(
                [
                    f"On the Mail host page set the daemons' database to {daemon_url} "
                    f"(it is {row or 'blank: the panel database'} now)."
                ]
            )
        steps.append(
            [
                "Render and install the daemons' configuration: manage.py apply_config "
                "(or render_config --out DIR and install it by hand). Postfix and "
                "Dovecot then read MariaDB, and Dovecot writes quota usage into "
                f"{DAEMON_WRITES} itself."
            ]
        )
        quota_file = str(settings.MAILADMIN_DOVECOT_QUOTA_DB)
        if os.path.exists(quota_file):
            steps.append(
                [
                    f"Then remove Dovecot's old quota file, as root: rm {quota_file} "
                    "(else beat copies its figures, which no longer change, over Dovecot's)."
                ]
            )
        return steps
