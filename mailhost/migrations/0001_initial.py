"""The mail host row: one, its key fixed."""

import django.core.validators
import mailhost.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='MailHost',
            fields=[
                ('id', models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False)),
                ('mail_hostname', models.CharField(help_text="The server's own name (Postfix myhostname).", max_length=253, validators=[mailhost.validators.validate_host_name])),
                ('mx_hosts', models.JSONField(blank=True, default=list, help_text='What MX records should name; the first is what PTR records should give.', validators=[mailhost.validators.validate_host_names])),
                ('public_ipv4', models.JSONField(blank=True, default=list, validators=[mailhost.validators.validate_ipv4_list])),
                ('public_ipv6', models.JSONField(blank=True, default=list, validators=[mailhost.validators.validate_ipv6_list])),
                ('vmail_dir', models.CharField(help_text='Maildirs live in DIR/<domain>/<local part>.', max_length=255, validators=[mailhost.validators.validate_vmail_dir])),
                ('vmail_uid', models.PositiveIntegerField(validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(4294967294)])),
                ('vmail_gid', models.PositiveIntegerField(validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(4294967294)])),
                ('daemon_database', models.CharField(blank=True, help_text='What Postfix and Dovecot connect to, without a password.', max_length=500, validators=[mailhost.validators.validate_daemon_database])),
                ('modified', models.DateTimeField(auto_now=True)),
            ],
            options={
                'constraints': [models.CheckConstraint(condition=models.Q(('id', 1)), name='mailhost_one_row')],
            },
        ),
    ]
