from django.db import migrations, models


class Migration(migrations.Migration):
    """Audit rows can belong to an event (an import's one row) and the log's
    pages read newest-first by index, all rows or one admin's domains."""

    dependencies = [
        ('core', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='auditentry',
            name='parent',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name='auditentry',
            index=models.Index(fields=['parent', 'at', 'id'], name='audit_log_parent_at'),
        ),
        migrations.AddIndex(
            model_name='auditentry',
            index=models.Index(fields=['domain_ref', 'parent', 'at'], name='audit_log_scope_at'),
        ),
    ]
