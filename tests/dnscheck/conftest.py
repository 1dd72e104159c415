import pytest


@pytest.fixture
def dead_dns(settings):
    """A host with one public address, DNS unreachable (tests/conftest.py), and a
    short budget: every check that needs DNS ends unknown within seconds."""
    settings.MAILADMIN_DNS_DOMAIN_BUDGET = 3.0
    settings.MAILADMIN_PUBLIC_IPV4 = ["192.0.2.10"]
    settings.MAILADMIN_PUBLIC_IPV6 = []
