from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.commands import actor, one_line
from mailhost import apply
from mailhost.models import ConfigApply


class Command(BaseCommand):
    help = (
        "Render this host's Postfix and Dovecot configuration into a staging directory, "
        "test it with the daemons' checkers and show what would change against the live "
        "files (--check). Runs here, not on the agent's queue."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true",
                            help="show what would change and the checkers' output; "
                                 "install nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["check"]:
            raise CommandError(
                "installing is not available yet (it needs the root helper); "
                "run apply_config --check to see what would change")
        try:
            requested = apply.request_apply(actor=actor(), check_only=True, enqueue=False)
        except ValidationError as exc:
            raise CommandError(one_line(exc)) from None
        done = apply.run_apply(requested.pk) or ConfigApply.objects.get(pk=requested.pk)
        self.report(done)
        if done.state != ConfigApply.State.DONE:
            raise CommandError(done.error or "the check did not finish")

    def report(self, done: ConfigApply) -> None:
        if done.checker_output:
            self.stdout.write(done.checker_output)
        for change in done.changes:
            self.stdout.write(f"would change: {apply.FileChange(**change)}")
        if done.outcome == ConfigApply.Outcome.NOTHING_TO_CHANGE:
            self.stdout.write("nothing to change")
        elif done.outcome == ConfigApply.Outcome.WOULD_CHANGE:
            self.stdout.write(f"{len(done.changes)} file(s) would change; nothing installed")
