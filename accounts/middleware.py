from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from accounts import sessions


class LastSeenMiddleware:
    """Moves the signed-in session's "last seen" (accounts.SignIn), at most once a minute."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # After the view: a sign-out has flushed the session by then, a sign-in made its row.
        if request.user.is_authenticated:
            sessions.touch(request)
        return response
