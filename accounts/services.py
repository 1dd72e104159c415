"""Writes to panel accounts (people who sign in to the panel)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts import audit


def create_superadmin(*, actor: str, username: str, password: str) -> AbstractBaseUser:
    user_model = get_user_model()
    username = username.strip()
    if not username or len(username) > 150:
        raise ValidationError("A user name of 1 to 150 characters is required.")
    validate_password(password)
    with transaction.atomic():
        if user_model.objects.filter(username=username).exists():
            raise ValidationError(f"The account {username} already exists.")
        user = user_model.objects.create_superuser(username=username, password=password)
        audit.record(actor=actor, action="admin.create", obj=user,
                     after={"username": username, "superadmin": True})
    return user


def has_superadmin() -> bool:
    return get_user_model().objects.filter(is_superuser=True, is_active=True).exists()
