from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from accounts import sessions, signin, twofactor


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


def _set_up_pages() -> set[str]:
    """Where a session held for set-up may go: an authenticator app or a security key."""
    return {reverse(name) for name in (
        "accounts:two-factor-enrol", "logout", "accounts:security-key-add",
        "accounts:security-key-begin", "accounts:security-key-complete",
        "accounts:security-key-added")}


class TwoFactorSessionMiddleware:
    """A signed-in session that never passed the second step, of an account that has one
    or must set one up now: sign-in checks that, but the session may be older than the
    account's authenticator (turned on in another session) or the policy.

    The first kind ends (it may be the very session the owner turned it on against);
    the second reaches only the set-up (an app or a key) and sign-out until it sets one up. Sessions
    that passed the step (or set it up) carry signin.VERIFIED and cost nothing here;
    others pay one or two indexed lookups a request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not request.session.get(signin.VERIFIED):
            if twofactor.has_two_factor(user):  # type: ignore[arg-type]
                logout(request)
                return redirect_to_login(request.get_full_path())
            enrol = reverse("accounts:two-factor-enrol")
            if twofactor.required_for(user) and \
                    request.path not in _set_up_pages():  # type: ignore[arg-type]
                return redirect(enrol)
        return self.get_response(request)
