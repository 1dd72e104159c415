from django.db import migrations, models


class Migration(migrations.Migration):
    """The audit log moves from accounts to core; its table stays where it is.

    Only Django's record of which app owns the model changes: the table
    `audit_log` and its rows are untouched.
    """

    initial = True

    dependencies = [
        ('accounts', '0003_audit_domain_ref'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='AuditEntry',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True,
                                                   serialize=False, verbose_name='ID')),
                        ('at', models.DateTimeField(auto_now_add=True, db_index=True)),
                        ('actor', models.CharField(db_index=True, max_length=254)),
                        ('action', models.CharField(db_index=True, max_length=64)),
                        ('object_type', models.CharField(max_length=64)),
                        ('object_id', models.BigIntegerField(null=True)),
                        ('object_repr', models.CharField(max_length=254)),
                        ('domain', models.CharField(blank=True, db_index=True, default='',
                                                    max_length=253)),
                        ('domain_ref', models.IntegerField(blank=True, db_index=True,
                                                           null=True)),
                        ('before', models.JSONField(blank=True, null=True)),
                        ('after', models.JSONField(blank=True, null=True)),
                    ],
                    options={
                        'db_table': 'audit_log',
                        'ordering': ['-at', '-id'],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
