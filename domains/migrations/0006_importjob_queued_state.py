"""ImportJob moves onto core.jobs: its waiting state is stored as "queued",
like every job's, instead of "pending". Same table, same columns."""

from django.db import migrations, models


def pending_to_queued(apps, schema_editor):
    ImportJob = apps.get_model("domains", "ImportJob")
    ImportJob.objects.using(schema_editor.connection.alias).filter(state="pending").update(state="queued")


def queued_to_pending(apps, schema_editor):
    ImportJob = apps.get_model("domains", "ImportJob")
    ImportJob.objects.using(schema_editor.connection.alias).filter(state="queued").update(state="pending")


class Migration(migrations.Migration):

    dependencies = [
        ('domains', '0005_domain_admins_move_here'),
    ]

    operations = [
        migrations.AlterField(
            model_name='importjob',
            name='state',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], db_index=True, default='queued', max_length=16),
        ),
        migrations.RunPython(pending_to_queued, queued_to_pending, elidable=False),
    ]
