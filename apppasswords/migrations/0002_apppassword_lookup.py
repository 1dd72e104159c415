"""App passwords are looked up by a salted hash of the whole token (`lookup`)
instead of its first characters, so Dovecot's SQL query carries no password.

Existing rows cannot get one: only the token's bcrypt hash is stored. They
are revoked (the feature had not been released) and given "-" + selector,
which no hex hash equals and is unique like the selector.
"""

from django.db import migrations, models
from django.db.models import Value
from django.db.models.functions import Concat
from django.utils import timezone


def revoke_rows_without_lookup(apps, schema_editor):
    AppPassword = apps.get_model("apppasswords", "AppPassword")
    AppPassword.objects.using(schema_editor.connection.alias).filter(revoked__isnull=True).update(revoked=timezone.now())
    AppPassword.objects.using(schema_editor.connection.alias).update(lookup=Concat(Value("-"), "selector"))


class Migration(migrations.Migration):

    dependencies = [
        ('apppasswords', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='apppassword',
            name='lookup',
            field=models.CharField(max_length=64, null=True),
        ),
        migrations.RunPython(revoke_rows_without_lookup, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='apppassword',
            name='lookup',
            field=models.CharField(max_length=64, unique=True),
        ),
    ]
