from django.db import migrations


class Migration(migrations.Migration):
    """Hands the audit log to core (see core 0001); the table is kept."""

    dependencies = [
        ('accounts', '0003_audit_domain_ref'),
        ('core', '0001_initial'),
        # Its data migration reads the audit log as accounts' model.
        ('domains', '0004_kept_maildirs'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='AuditEntry')],
            database_operations=[],
        ),
    ]
