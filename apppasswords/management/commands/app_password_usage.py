"""App passwords' last use: copy the mail host's usage lines into the panel."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apppasswords import services
from core.actor import Actor
from mailhost import privileged


class Command(BaseCommand):
    help = ("`sync`: take the login check's app-password usage lines through the root helper "
            "(`app-usage take`) and record each app password's newest use (when, from which "
            "address, which service); beat does it every few minutes. Run it where the "
            "helper is (the agent's user and environment).")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=["sync"])

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = services.sync_app_password_usage(actor=Actor.cli())
        except privileged.HelperError as error:
            raise CommandError(f"not synced: {error} (the lines stay on the mail host)"
                               ) from None
        if result.not_run:
            raise CommandError(f"not synced: {result.not_run}")
        skipped = f", {result.skipped} skipped (malformed)" if result.skipped else ""
        self.stdout.write(f"App-password usage: {result.lines} line"
                          f"{'' if result.lines == 1 else 's'} read{skipped}, "
                          f"{result.updated} app password{'' if result.updated == 1 else 's'} "
                          "updated.")
