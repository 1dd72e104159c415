import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    """Domain admin grants move from accounts to domains; the table stays.

    Only Django's record of which app owns the model changes: the table
    `domain_admins`, its rows and its constraint are untouched.
    """

    dependencies = [
        ('domains', '0004_kept_maildirs'),
        ('accounts', '0004_audit_moves_to_core'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='DomainAdmin',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True,
                                                   serialize=False, verbose_name='ID')),
                        ('domain', models.ForeignKey(
                            on_delete=django.db.models.deletion.CASCADE,
                            related_name='admin_grants', to='domains.domain')),
                        ('user', models.ForeignKey(
                            on_delete=django.db.models.deletion.CASCADE,
                            related_name='domain_grants', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'domain_admins',
                        'constraints': [models.UniqueConstraint(fields=('user', 'domain'),
                                                                name='domain_admin_once')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
