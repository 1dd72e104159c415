"""Quota usage on a SQLite panel: make Dovecot's file, copy it into the panel."""

from __future__ import annotations

import argparse
import os
import sqlite3
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.actor import Actor
from domains import quota_file, services


class Command(BaseCommand):
    help = ("Quota usage when the daemons read a SQLite database: `init` makes the file "
            "Dovecot's dict process writes usage into (MAILADMIN_DOVECOT_QUOTA_DB, run as "
            "root), `sync` copies it into the panel's quota_usage table (beat does it every "
            "few minutes). On MariaDB Dovecot writes the panel's table itself.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=["init", "sync"])
        parser.add_argument("--path", default="",
                            help="the file (default: MAILADMIN_DOVECOT_QUOTA_DB)")
        parser.add_argument("--owner", default="dovecot",
                            help="init: the user Dovecot's dict process runs as")

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["path"] or settings.MAILADMIN_DOVECOT_QUOTA_DB
        try:
            if options["action"] == "init":
                if os.geteuid() != 0:
                    raise CommandError("init gives the file to Dovecot's user: run it as root")
                made = quota_file.create(path, owner=options["owner"])
                self.stdout.write(f"{made} is ready for Dovecot ({options['owner']}).")
                return
            if not os.path.exists(path):
                raise CommandError(f"{path} does not exist (manage.py quota_usage init)")
            changed = services.sync_quota_usage(actor=Actor.cli(), path=path)
        except KeyError:
            raise CommandError(f"no user {options['owner']!r}") from None
        except (OSError, sqlite3.Error) as error:
            raise CommandError(f"{path}: {error}") from None
        self.stdout.write(f"Copied quota usage: {changed} row{'' if changed == 1 else 's'} "
                          "changed.")
