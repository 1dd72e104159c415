from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from core.actor import Actor
from core.models import AuditEntry
from mailhost import services
from mailhost.models import MailHost

ACTOR = Actor.account("root@admin.test")


@pytest.fixture
def host(db, settings) -> MailHost:
    settings.MAILADMIN_MAIL_HOSTNAME = "mail.example.org"
    settings.MAILADMIN_MX_HOSTS = ["mail.example.org"]
    settings.MAILADMIN_VMAIL_DIR = "/var/vmail"
    settings.MAILADMIN_DAEMON_DATABASE_URL = "mysql://ro:hunter2secret@127.0.0.1:3306/mail"
    return MailHost.current()


def test_it_saves_the_fields_and_writes_one_audit_row(host):
    services.update_mail_host(actor=ACTOR, mail_hostname="mx.example.net",
                              public_ipv4=["192.0.2.7"], vmail_dir="/var/vmail")

    host.refresh_from_db()
    assert (host.mail_hostname, host.public_ipv4) == ("mx.example.net", ["192.0.2.7"])
    [row] = AuditEntry.objects.all()
    assert (row.actor, row.action, row.object_type) == (
        "root@admin.test", "mailhost.update", "mailhost")
    assert row.before == {"mail_hostname": "mail.example.org", "public_ipv4": []}
    assert row.after == {"mail_hostname": "mx.example.net", "public_ipv4": ["192.0.2.7"]}


def test_it_writes_no_audit_row_when_nothing_changed(host):
    services.update_mail_host(actor=ACTOR, mail_hostname="mail.example.org")

    assert not AuditEntry.objects.exists()


def test_it_keeps_no_secret_in_the_row_or_the_audit(host):
    services.update_mail_host(actor=ACTOR, daemon_database="mysql://reader@db.internal/mail")

    host.refresh_from_db()
    assert host.daemon_database == "mysql://reader@db.internal/mail"
    [row] = AuditEntry.objects.all()
    assert row.before == {"daemon_database": "mysql://ro@127.0.0.1:3306/mail"}
    assert "hunter2secret" not in str(row.before) + str(row.after)


def test_it_refuses_a_password_in_the_daemon_database(host):
    with pytest.raises(ValidationError) as refused:
        services.update_mail_host(actor=ACTOR,
                                  daemon_database="mysql://reader:pw@db.internal/mail")

    assert "daemon_database" in refused.value.message_dict
    host.refresh_from_db()
    assert host.daemon_database == "mysql://ro@127.0.0.1:3306/mail"
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(("field", "value"), [
    ("mail_hostname", "not a host"),
    ("mail_hostname", "-bad.example.org"),
    ("mx_hosts", ["mx.example.org", "under_score.example.org"]),
    ("public_ipv4", ["2001:db8::1"]),
    ("public_ipv6", ["192.0.2.1"]),
    ("public_ipv4", ["192.0.2.0/24"]),
    ("vmail_dir", "relative/vmail"),
    ("vmail_dir", "/"),
    ("vmail_dir", "/var/v'mail"),
    ("vmail_dir", "/var/v mail"),
    ("vmail_uid", 0),
    ("vmail_gid", 2**32),
    ("daemon_database", "postgres://ro@db/mail"),
    ("daemon_database", "mysql://ro@db:notaport/mail"),
])
def test_it_refuses_what_the_daemons_could_not_use(host, field, value):
    with pytest.raises(ValidationError) as refused:
        services.update_mail_host(actor=ACTOR, **{field: value})

    assert field in refused.value.message_dict
    assert not AuditEntry.objects.exists()


def test_it_takes_only_mail_host_fields(host):
    with pytest.raises(TypeError):
        services.update_mail_host(actor=ACTOR, id=2)
