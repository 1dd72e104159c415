import pytest
from django.test import override_settings

from tests.integration.mailstack import MailStack, mail_stack


@pytest.fixture(scope="session")
def mailstack_session(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), mail_stack() as stack:
        yield stack


@pytest.fixture
def stack(mailstack_session: MailStack, transactional_db):
    """The running daemons, with the panel's settings pointing where they look.

    Transactional: the daemons read committed rows from their own connections.
    Dovecot's auth cache is emptied first: the database is emptied between tests
    behind the panel's back, and no test may sign in from another's cached entry.
    The panel's flushes reach this Dovecot through the root helper (overrides).
    """
    mailstack_session.flush_auth_cache()
    with override_settings(**mailstack_session.overrides):
        yield mailstack_session


# Knot and Unbound on loopback for the DNS health checks (fixtures live with the harness).
from tests.integration.dnsserver import dns, dns_servers_session  # noqa: E402, F401
