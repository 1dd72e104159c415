from django.db import migrations


class Migration(migrations.Migration):
    """Hands the domain admin grants to domains (see domains 0005); the table is kept."""

    dependencies = [
        ('accounts', '0004_audit_moves_to_core'),
        ('domains', '0005_domain_admins_move_here'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='DomainAdmin')],
            database_operations=[],
        ),
    ]
