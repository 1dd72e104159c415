"""Drop import jobs past their lifetime; beat runs the same sweep when there is one."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from domains import services


class Command(BaseCommand):
    help = ("Delete CSV import jobs (and their password hashes) older than "
            "MAILADMIN_IMPORT_PENDING_HOURS that never ran.")

    def handle(self, *args: Any, **options: Any) -> None:
        swept = services.sweep_import_jobs()
        self.stdout.write(f"Swept {swept} stale import job{'' if swept == 1 else 's'} "
                          f"(older than {settings.MAILADMIN_IMPORT_PENDING_HOURS:g} hours).")
