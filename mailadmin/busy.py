"""A request that waited out SQLite's busy timeout gets a 503 page, not a 500.

SQLite has one writer at a time. Another panel write waits for a long one (a
100,000-row import holds the lock for tens of seconds) up to the busy timeout
(`timeout` in core.env.database_from_url); past it the write fails with
"database is locked". The mail daemons never wait: they read the last commit
(WAL mode, core.sqlite_wal).
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import OperationalError, connection
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.template.loader import render_to_string


def is_busy(error: BaseException) -> bool:
    return (isinstance(error, OperationalError) and connection.vendor == "sqlite"
            and "database is locked" in str(error))


class DatabaseBusyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_busy(exception):
            return None
        seconds = connection.settings_dict.get("OPTIONS", {}).get("timeout", 5)
        return HttpResponse(render_to_string("busy.html", {"seconds": seconds}, request=request),
                            status=503, headers={"Retry-After": "60"})
