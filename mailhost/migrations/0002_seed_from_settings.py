"""This host's row, from the settings that described it until now.

An existing install keeps rendering what it rendered: the values come from
the same MAILADMIN_* settings. Reversing leaves the row (dropped with the table).
"""

from typing import Any

from django.db import migrations

from mailhost.seed import fields_from_settings

THIS_HOST = 1


def seed_from_settings(apps: Any, schema_editor: Any) -> None:
    MailHost = apps.get_model("mailhost", "MailHost")
    MailHost.objects.using(schema_editor.connection.alias).get_or_create(pk=THIS_HOST, defaults=fields_from_settings())


class Migration(migrations.Migration):
    dependencies = [("mailhost", "0001_initial")]

    operations = [migrations.RunPython(seed_from_settings, migrations.RunPython.noop)]
