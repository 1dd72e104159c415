#!/usr/bin/env python3
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailadmin.settings")
    from django.core.management import execute_from_command_line
    from django.db import InterfaceError, OperationalError

    try:
        execute_from_command_line(sys.argv)
    except (OperationalError, InterfaceError) as error:
        # Any command, Django's own too: one line, not a traceback, when the
        # database is down, restarting or its file unreadable.
        sys.stderr.write(f"the database is not answering: {error}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
