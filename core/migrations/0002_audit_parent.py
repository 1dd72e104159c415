from django.db import migrations, models


class Migration(migrations.Migration):
    """Audit rows can belong to an event (an import's or a domain deletion's one
    row: `parent`), and the log's pages read newest first by index: all events,
    one admin's domains, one event's rows, and each filter (actor, action,
    domain). The composite indexes replace the one-column ones of their first
    column, and are made before those are dropped."""

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
        migrations.AddIndex(
            model_name='auditentry',
            index=models.Index(fields=['actor', 'parent', 'at'], name='audit_log_actor_at'),
        ),
        migrations.AddIndex(
            model_name='auditentry',
            index=models.Index(fields=['action', 'parent', 'at'], name='audit_log_action_at'),
        ),
        migrations.AddIndex(
            model_name='auditentry',
            index=models.Index(fields=['domain', 'parent', 'at'], name='audit_log_domain_at'),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='action',
            field=models.CharField(max_length=64),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='actor',
            field=models.CharField(max_length=254),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='domain',
            field=models.CharField(blank=True, default='', max_length=253),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='domain_ref',
            field=models.IntegerField(blank=True, null=True),
        ),
    ]
