"""Prepare the embedded default: migrate, and create the first admin once."""

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from accounts import services
from core.actor import QUICKSTART
from core.env import generated_password


class Command(BaseCommand):
    help = "Migrate the database and, on first start, create an admin and print its password."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        # No beat on the embedded default: stale imports' hashes go at each start.
        call_command("sweep_imports", stdout=self.stdout)
        if services.has_superadmin():
            self.stdout.write(
                f"Panel ready at {options['url']}. To reset a forgotten admin password: "
                "python manage.py changepassword USERNAME")
            return
        password = generated_password()
        services.create_superadmin(actor=QUICKSTART, username=options["username"],
                                   password=password)
        self.stdout.write(self.style.SUCCESS(
            f"First admin created. Sign in at {options['url']} as {options['username']!r} "
            f"with password {password!r}\n(shown only this once; change it with "
            f"`python manage.py changepassword {options['username']}`)."))
