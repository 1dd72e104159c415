"""Panel sessions as their owner sees them: recorded at sign-in, listed, ended.

Django keeps sessions in the database (django_session); each signed-in one
gets an accounts.SignIn row at sign-in (user_logged_in) holding what the
owner needs to recognise it: when it began and was last seen, the client's
address and browser. Nothing here writes an audit row: the services that end
sessions on someone's request do (accounts.services).
"""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import SignIn
from accounts.security import client_ip

# Live sessions kept per account. One more sign-in ends the longest idle one:
# a bound on what the list shows and on what an end-all has to delete.
MAX_SESSIONS = 30
# last_seen moves at most this often: a read per request, a write only when
# it is due (on SQLite even an UPDATE matching no row waits for the write
# lock, so every page would queue behind a long write elsewhere), and never a
# write to the session itself (that would make the fixed lifetime sliding).
SEEN_EVERY = datetime.timedelta(minutes=1)
USER_AGENT_LENGTH = 255


def _user_agent(request: HttpRequest) -> str:
    text = request.META.get("HTTP_USER_AGENT", "")
    return text[:USER_AGENT_LENGTH] if isinstance(text, str) else ""


def record_sign_in(sender: object, request: HttpRequest, user: User, **kwargs: Any) -> None:
    """user_logged_in receiver: the new session's row, and the account's old rows pruned."""
    session = getattr(request, "session", None)
    key = session.session_key if session is not None else None
    if not key:
        return
    now = timezone.now()
    with transaction.atomic():
        Session.objects.filter(sign_in__user=user, expire_date__lte=now).delete()
        SignIn.objects.update_or_create(session_id=key, defaults={
            "user": user, "started": now, "last_seen": now, "ip": client_ip(request),
            "user_agent": _user_agent(request)})
        beyond = list(SignIn.objects.filter(user=user).order_by("-last_seen", "-pk")
                      .values_list("session_id", flat=True)[MAX_SESSIONS:])
        if beyond:
            Session.objects.filter(pk__in=beyond).delete()


def touch(request: HttpRequest) -> None:
    """Moves last_seen of the request's session, at most once per SEEN_EVERY."""
    key = request.session.session_key
    if not key:
        return
    now = timezone.now()
    due = SignIn.objects.filter(session_id=key, last_seen__lt=now - SEEN_EVERY)
    if due.exists():
        due.update(last_seen=now)


def live_sign_ins(user: User) -> list[SignIn]:
    """The account's sessions that still sign it in, most recently seen first (bounded).

    A session whose stored password hash no longer matches the account's is
    dead (Django refuses it at its next request) even before its row goes.
    """
    rows = list(SignIn.objects.filter(user=user, session__expire_date__gt=timezone.now())
                .select_related("session").order_by("-last_seen", "-pk")[:MAX_SESSIONS])
    wanted = user.get_session_auth_hash()
    return [row for row in rows
            if row.session.get_decoded().get("_auth_user_hash") == wanted]


def end_sessions(user: User, *, keep: str | None = None) -> int:
    """Deletes every session of `user` but `keep` (a session key); how many ended.

    Recorded sessions go by their rows. Sessions without a row (opened before
    rows were kept) are found by decoding: only live ones without a row, a
    set that empties as they expire.
    """
    live = Session.objects.filter(expire_date__gt=timezone.now())
    keys = set(live.filter(sign_in__user=user).values_list("pk", flat=True))
    keys |= {s.pk for s in live.filter(sign_in__isnull=True).iterator()
             if str(s.get_decoded().get("_auth_user_id")) == str(user.pk)}
    keys.discard(keep or "")
    _, deleted = Session.objects.filter(pk__in=keys).delete()
    return deleted.get(Session._meta.label, 0)


def keep_signed_in(request: HttpRequest, user: User) -> None:
    """After the account's password changed: this session goes on, under a new key.

    update_session_auth_hash gives the session a new key (the old row goes
    with the old key); its row is written again for the new one, same start.
    """
    old = SignIn.objects.filter(session_id=request.session.session_key or "").first()
    update_session_auth_hash(request, user)
    if old is None:
        return
    request.session.save()  # the new key's session row, which the new SignIn needs
    try:
        with transaction.atomic():
            SignIn.objects.update_or_create(session_id=request.session.session_key, defaults={
                "user": user, "started": old.started, "last_seen": timezone.now(),
                "ip": old.ip, "user_agent": old.user_agent})
    except IntegrityError:  # the session ended meanwhile: nothing to keep
        pass


def browser(user_agent: str) -> str:
    """A short name for a User-Agent string ("Firefox on Linux"); "" when unknown."""
    agent = user_agent.lower()
    name = next((label for token, label in (
        ("edg/", "Edge"), ("opr/", "Opera"), ("firefox/", "Firefox"), ("chromium/", "Chromium"),
        ("chrome/", "Chrome"), ("safari/", "Safari"), ("curl/", "curl"),
    ) if token in agent), "")
    system = next((label for token, label in (
        ("android", "Android"), ("iphone", "iOS"), ("ipad", "iPadOS"), ("windows", "Windows"),
        ("mac os", "macOS"), ("cros", "ChromeOS"), ("linux", "Linux"),
    ) if token in agent), "")
    if name and system:
        return f"{name} on {system}"
    return name or system
