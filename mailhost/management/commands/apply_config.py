from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.commands import actor, one_line
from mailhost import apply
from mailhost.models import ConfigApply


class Command(BaseCommand):
    help = (
        "Render this host's Postfix and Dovecot configuration into a staging directory, "
        "test it with the daemons' checkers, then install it through the root helper "
        "(with a backup), reload only the daemons whose files changed, probe that they "
        "answer and roll back if not. --check only shows what would change. Runs here, "
        "not on the agent's queue. Exit status 1 when anything was refused or rolled back."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true",
                            help="show what would change and the checkers' output; "
                                 "install nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        check_only = bool(options["check"])
        try:
            requested = apply.request_apply(actor=actor(), check_only=check_only,
                                            enqueue=False)
        except ValidationError as exc:
            raise CommandError(one_line(exc)) from None
        done = apply.run_apply(requested.pk) or ConfigApply.objects.get(pk=requested.pk)
        self.report(done)
        if done.state != ConfigApply.State.DONE:
            raise CommandError(" ".join((done.error or "the apply did not finish").split()))

    def report(self, done: ConfigApply) -> None:
        if done.checker_output:
            self.stdout.write(done.checker_output)
        verb = "would change" if done.check_only else "changed"
        for change in done.changes:
            self.stdout.write(f"{verb}: {apply.FileChange(**change)}")
        if done.outcome == ConfigApply.Outcome.NOTHING_TO_CHANGE:
            self.stdout.write("nothing to change" + ("" if done.check_only
                                                     else "; nothing installed or reloaded"))
        elif done.outcome == ConfigApply.Outcome.WOULD_CHANGE:
            self.stdout.write(f"{len(done.changes)} file(s) would change; nothing installed")
        elif done.outcome == ConfigApply.Outcome.APPLIED:
            backups = ", ".join(f"{d} backup {b}" for d, b in done.backups.items())
            self.stdout.write(f"applied {len(done.changes)} file(s); reloaded "
                              f"{', '.join(done.reloaded)}; {backups}")
