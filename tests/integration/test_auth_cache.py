"""Dovecot's auth cache on the real daemon: a change in the panel is effective
at the very next IMAP login, because the service flushes the mailbox's entry
through the root helper (the stack wires MAILADMIN_HELPER_COMMAND to the
helper with a configuration whose doveadm reaches this Dovecot).

The control shows the cache is real: with no helper on the host, the old
password keeps working after the change, from the cache.
"""

from __future__ import annotations

import pytest

from domains import services

pytestmark = pytest.mark.daemons

OLD = "the old long password 1"
NEW = "the new long password 2"
ADDRESS = "cached@cache.test"


@pytest.fixture
def mailbox(stack):
    services.create_domain(actor="t", name="cache.test")
    created = services.create_mailbox(actor="t", email=ADDRESS, password=OLD)
    # The first login fills the cache with the passdb's answer (the stored hash).
    assert stack.imap_login_ok(ADDRESS, OLD)
    assert "auth_cache_size = 10M" in (
        stack.etc / "dovecot" / "conf.d" / "90-mailadmin.conf").read_text()
    return created


def test_without_a_flush_the_old_password_still_signs_in_from_the_cache(
        stack, mailbox, settings):
    settings.MAILADMIN_HELPER_COMMAND = []  # this host has no helper: nothing is flushed
    services.set_mailbox_password(actor="t", mailbox=mailbox, password=NEW)
    assert stack.imap_login_ok(ADDRESS, OLD)  # the database says otherwise
    stack.doveadm("auth", "cache", "flush", ADDRESS, check=True)
    assert not stack.imap_login_ok(ADDRESS, OLD)
    assert stack.imap_login_ok(ADDRESS, NEW)


def test_without_a_flush_a_disabled_mailbox_still_signs_in_from_the_cache(
        stack, mailbox, settings):
    settings.MAILADMIN_HELPER_COMMAND = []
    services.set_mailbox_active(actor="t", mailbox=mailbox, active=False)
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
