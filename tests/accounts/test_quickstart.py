import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.http import HttpRequest

from core.models import AuditEntry


@pytest.mark.django_db
def test_it_creates_the_first_admin_once_and_the_password_signs_in(client):
    out = io.StringIO()
    call_command("quickstart", stdout=out)
    text = out.getvalue()
    assert "Sign in at http://127.0.0.1:8000/ as 'admin' with password" in text
    password = text.split("with password '")[1].split("'")[0]
    assert len(password) >= 20
    assert client.login(request=HttpRequest(), username="admin", password=password)
    entry = AuditEntry.objects.get(action="admin.create")
    assert password not in str(entry.after)

    again = io.StringIO()
    call_command("quickstart", stdout=again)
    assert "password" not in again.getvalue().split("To reset")[0]
    assert get_user_model().objects.count() == 1
