"""The policy every new mailbox password meets, whoever types it (admin, user,
CSV file), and a generator whose passwords meet it."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

from core.env import GENERATED_PASSWORD_LENGTH, generated_password
from domains import passwords

GENERATE_ATTEMPTS = 20


def generate_password(*, email: str) -> str:
    """A generated password the policy takes (a random one may contain a short local part)."""
    length = max(GENERATED_PASSWORD_LENGTH, settings.MAILADMIN_PASSWORD_MIN_LENGTH)
    for _ in range(GENERATE_ATTEMPTS):
        password = generated_password(length)
        if not password_policy_problems(password, email):
            return password
    raise ValidationError({"password": "No generated password met the password policy; "
                                       "type one instead."})


def password_policy_problems(password: str, email: str, *, current: str = "") -> list[str]:
    """Why a new mailbox password is refused; empty when it is acceptable."""
    problems: list[str] = []
    minimum = settings.MAILADMIN_PASSWORD_MIN_LENGTH
    if len(password) < minimum:
        problems.append(f"Use at least {minimum} characters.")
    local = email.rsplit("@", 1)[0].lower()
    if len(local) >= 3 and local in password.lower():
        problems.append("Do not put your address's name in your password.")
    if current and password == current:
        problems.append("Choose a password different from the current one.")
    if not passwords.can_hash(password):
        problems.append("Use at most 72 bytes, and no control characters.")
    return problems


def _policy_hash(password: str, email: str) -> str:
    """The hash of a plaintext that meets the policy, whoever typed it (admin, user, file)."""
    if passwords.can_hash(password):  # else hash_password says exactly why it cannot
        problems = password_policy_problems(password, email)
        if problems:
            raise ValidationError({"password": problems})
    return passwords.hash_password(password)


def _password_value(password: str | None, password_hash: str | None, email: str) -> str:
    """The stored value from a plaintext (the policy, then hashed) or an imported hash."""
    if (password is None) == (password_hash is None):
        raise ValidationError("Give either a password or a password hash.")
    if password is not None:
        return _policy_hash(password, email)
    assert password_hash is not None
    return passwords.normalize_hash(password_hash)
