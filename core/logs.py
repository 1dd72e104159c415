"""What the logging configuration needs from core, importable before the apps load."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError

# Connection refused or lost, a server restarting, SQLite's file unreadable or locked.
DATABASE_DOWN = (OperationalError, InterfaceError)


class NoTracebackForOutages(logging.Filter):
    """Django's request log line for a database outage without its traceback: the
    cause is the database's, said in one line (core.outage), not a bug to read."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], DATABASE_DOWN):
            record.exc_info = None
            record.exc_text = None
        return True
