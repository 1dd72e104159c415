import pytest


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    """bcrypt at cost 4 in tests; production uses MAILADMIN_BCRYPT_ROUNDS (12)."""
    settings.MAILADMIN_BCRYPT_ROUNDS = 4
