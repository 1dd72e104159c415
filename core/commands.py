"""Shared plumbing for the management commands.

Each command has subcommands (`domain add`, `mailbox passwd`, ...); bad input
ends in one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, InterfaceError, OperationalError

from core.actor import Actor


def actor() -> Actor:
    return Actor.cli()


def one_line(exc: ValidationError) -> str:
    return " ".join(str(m) for m in exc.messages)


class OneLineParser(CommandParser):
    """Usage errors as one line (`manage.py domain add: error: ...`), exit status 2."""

    def print_usage(self, file: Any = None) -> None:
        if file is not sys.stderr:
            super().print_usage(file)


class SubcommandCommand(BaseCommand):
    """Dispatches `manage.py NAME ACTION ...` to `self.do_ACTION(**options)`."""

    actions: dict[str, str] = {}

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                    parser_class=OneLineParser)
        for action, help_text in self.actions.items():
            self.add_action(sub.add_parser(action, help=help_text), action)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.print_usage = OneLineParser.print_usage.__get__(parser)  # type: ignore[method-assign]
        return parser

    def add_action(self, parser: CommandParser, action: str) -> None:
        raise NotImplementedError

    def handle(self, *args: Any, **options: Any) -> None:
        handler: Callable[..., None] = getattr(self, "do_" + options["action"].replace("-", "_"))
        try:
            handler(**options)
        except ValidationError as exc:
            raise CommandError(one_line(exc)) from None
        except (OperationalError, InterfaceError) as exc:
            raise CommandError(f"the database is not answering: {exc}") from None
        except DatabaseError as exc:
            raise CommandError(f"database error: {exc}") from None

    def read_password(self, options: dict[str, Any], *, confirm: bool = True) -> str:
        """From stdin with --password-stdin, else an interactive prompt; never argv."""
        if options.get("password_stdin"):
            try:
                password = sys.stdin.readline().rstrip("\r\n")
            except UnicodeDecodeError:
                raise CommandError("the password on stdin is not valid UTF-8") from None
        elif sys.stdin.isatty():
            password = getpass.getpass("Password: ")
            if confirm and getpass.getpass("Password (again): ") != password:
                raise CommandError("the two passwords differ")
        else:
            raise CommandError("give the password on stdin with --password-stdin")
        if not password:
            raise CommandError("the password is empty")
        return password

    def emit(self, rows: Iterable[dict[str, Any]], columns: list[str], as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(list(rows), indent=2, default=str))
            return
        for row in rows:
            self.stdout.write("\t".join(_cell(row[c]) for c in columns))


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "active" if value else "disabled"
    return str(value)
