"""A part the panel needs is down: a 503 page that says which, never a 500.

The page comes from a template that extends nothing and is rendered without
the request: no context processor, session or user lookup runs, so it shows
while the database itself is not answering. Errors raised in a view reach
`OutageMiddleware`; those raised in a middleware (the session, the signed-in
user) reach Django's last handler, `server_error` (mailadmin.urls.handler500).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views import defaults

from core.jobs import QueueDown
from core.logs import database_busy, database_unreachable

log = logging.getLogger(__name__)

DATABASE_MESSAGE = "The database is not answering; try again in a minute."
BUSY_MESSAGE = ("Another change, such as an import of many mailboxes or the deletion of a "
                "large domain, held the database longer than this request could wait. Mail "
                "delivery and sign-ins are not affected. Check whether your change is there, "
                "and try again in a minute.")
RETRY_AFTER_SECONDS = 60


def unavailable(title: str, message: str) -> HttpResponse:
    response = HttpResponse(
        render_to_string("503.html", {"title": title, "message": message}), status=503
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def database_down(request: HttpRequest, error: BaseException) -> HttpResponse:
    # One line: the cause is the database's, not a bug with a traceback to read.
    log.error("database not answering on %s %s: %s", request.method, request.path, error)
    return unavailable("Database not answering", DATABASE_MESSAGE)


def database_held(request: HttpRequest, error: BaseException) -> HttpResponse:
    log.warning("database busy on %s %s: %s", request.method, request.path, error)
    return unavailable("The database is busy", BUSY_MESSAGE)


def _page_for(request: HttpRequest, error: BaseException) -> HttpResponse | None:
    if database_busy(error):
        return database_held(request, error)
    if database_unreachable(error):
        return database_down(request, error)
    return None


class OutageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        page = _page_for(request, exception)
        if page is not None:
            return page
        if isinstance(exception, QueueDown):
            # A view that does not say it on its own page (its service set the row right).
            return unavailable("Task queue not answering", str(exception))
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a database outage met outside a view is a 503 too."""
    error = sys.exc_info()[1]
    page = _page_for(request, error) if error is not None else None
    return page if page is not None else defaults.server_error(request)
