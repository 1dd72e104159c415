"""Dovecot's auth cache on the real daemon: a change in the panel is effective
at the very next IMAP login, because the service flushes the mailbox's entry
through the root helper (the stack wires MAILADMIN_HELPER_COMMAND to the
helper with a configuration whose doveadm reaches this Dovecot).

The rendered configuration checks passwords in a Lua passdb behind an
uncached SQL lookup (deploy/dovecot/mailadmin-login-cache.lua), so Dovecot
caches the accepted password as a SHA1 and a repeated login runs no bcrypt
(benchmarks/logins.py measures it).

The cache is real: a repeated login is counted as a cache hit. It cannot
outlive a change even without a flush: the password check is keyed by the
stored hash, and the mailbox lookup in front of it is never cached.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from domains import services

pytestmark = pytest.mark.daemons

OLD = "the old long password 1"
NEW = "the new long password 2"
ADDRESS = "cached@cache.test"


def cache_hits(stack) -> int:
    """Dovecot's auth cache hits since its last report: SIGUSR2 makes the auth
    process log them, and the count starts again from zero after each report."""
    master = int((stack.root / "dovecot-run" / "master.pid").read_text())
    # Titles are "<instance>/auth"; the auth worker is the same program with -w.
    [auth] = [int(pid) for pid in os.listdir("/proc") if pid.isdigit()
              and _status(pid).get("PPid") == str(master)
              and _title(pid).endswith("/auth")]
    log = stack.root / "dovecot.log"
    seen = log.read_text().count("Authentication cache hits")
    os.kill(auth, signal.SIGUSR2)
    for _ in range(100):
        lines = [line for line in log.read_text().splitlines()
                 if "Authentication cache hits" in line]
        if len(lines) > seen:
            return int(lines[-1].split("cache hits ")[1].split("/")[0])
        time.sleep(0.05)
    raise AssertionError("the auth process did not log its cache statistics")


def _title(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _status(pid: str) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)
    except OSError:
        return {}


@pytest.fixture
def mailbox(stack):
    services.create_domain(actor="t", name="cache.test")
    created = services.create_mailbox(actor="t", email=ADDRESS, password=OLD)
    # The first login fills the cache with the passdb's answer (the stored hash).
    assert stack.imap_login_ok(ADDRESS, OLD)
    assert "auth_cache_size = 10M" in (
        stack.etc / "dovecot" / "conf.d" / "90-mailadmin.conf").read_text()
    return created


def test_a_repeated_login_is_answered_from_the_cache(stack, mailbox):
    # `doveadm auth test` is a passdb check only (no userdb lookup), and the
    # SQL lookup in front is never cached: each hit counted is the password
    # check answered from the cache, without bcrypt.
    # The app-password lookup behind it finds no app password for this typed
    # password: that "unknown" is cached too (auth_cache_negative_ttl), so the
    # second and third logins count a hit there as well.
    cache_hits(stack)  # the count starts again after each report
    for _ in range(3):
        assert stack.auth_ok(ADDRESS, OLD)
    assert cache_hits(stack) == 3 + 2


def test_even_without_a_flush_the_old_password_is_refused_at_the_next_login(
        stack, mailbox, settings):
    # The cached check is keyed by the stored hash too, so a changed password
    # never matches an entry made for the old one.
    settings.MAILADMIN_HELPER_COMMAND = []  # this host has no helper: nothing is flushed
    services.set_mailbox_password(actor="t", mailbox=mailbox, password=NEW)
    assert not stack.imap_login_ok(ADDRESS, OLD)
    assert stack.imap_login_ok(ADDRESS, NEW)


def test_even_without_a_flush_a_disabled_mailbox_is_refused_at_the_next_login(
        stack, mailbox, settings):
    # The mailbox lookup in front of the cached password check is never
    # cached (noauthenticate), so the database's answer counts at every login.
    settings.MAILADMIN_HELPER_COMMAND = []
    services.set_mailbox_active(actor="t", mailbox=mailbox, active=False)
    assert not stack.imap_login_ok(ADDRESS, OLD)


def test_the_stored_hash_reaches_neither_the_login_nor_the_mail_process(stack, mailbox):
    stored = type(mailbox).objects.get(pk=mailbox.pk).password
    login = stack.doveadm("auth", "login", ADDRESS, OLD)
    assert login.returncode == 0, login.stdout + login.stderr
    assert "mailadmin_stored" not in login.stdout and stored not in login.stdout
    user = stack.doveadm("user", ADDRESS)
    assert user.returncode == 0 and "mailadmin_stored" not in user.stdout


def test_a_wrong_password_is_refused_and_never_answered_from_the_cache(stack, mailbox):
    assert not stack.imap_login_ok(ADDRESS, "not the password at all")
    assert stack.imap_login_ok(ADDRESS, OLD)


def test_after_a_password_change_the_old_password_is_refused_at_once(stack, mailbox):
    services.set_mailbox_password(actor="t", mailbox=mailbox, password=NEW)
    assert not stack.imap_login_ok(ADDRESS, OLD)  # the very next login
    assert stack.imap_login_ok(ADDRESS, NEW)
    assert not stack.imap_login_ok(ADDRESS, OLD)


def test_after_the_users_own_change_the_old_password_is_refused_at_once(stack, mailbox):
    services.change_own_password(mailbox=mailbox, current=OLD, new=NEW)
    assert not stack.imap_login_ok(ADDRESS, OLD)
    assert stack.imap_login_ok(ADDRESS, NEW)


def test_a_disabled_mailbox_is_refused_at_once_and_enabled_again_at_once(stack, mailbox):
    services.set_mailbox_active(actor="t", mailbox=mailbox, active=False)
    assert not stack.imap_login_ok(ADDRESS, OLD)
    # That refusal is cached too (auth_cache_negative_ttl): enabling flushes it.
    services.set_mailbox_active(actor="t", mailbox=mailbox, active=True)
    assert stack.imap_login_ok(ADDRESS, OLD)


def test_a_disabled_domain_refuses_all_its_mailboxes_at_once(stack, mailbox):
    other = "other@cache.test"
    services.create_mailbox(actor="t", email=other, password=OLD)
    assert stack.imap_login_ok(other, OLD)
    services.set_domain_active(actor="t", domain=mailbox.domain, active=False)
    # Both in one `doveadm auth cache flush A B` (the helper's batch).
    assert not stack.imap_login_ok(ADDRESS, OLD)
    assert not stack.imap_login_ok(other, OLD)


def test_a_deleted_mailbox_is_refused_at_once(stack, mailbox):
    services.delete_mailbox(actor="t", mailbox=mailbox)
    assert not stack.imap_login_ok(ADDRESS, OLD)
