"""MailHost: one row, made from the settings once, then read instead of them."""

from __future__ import annotations

import importlib

import pytest
from django.db import IntegrityError, transaction

from mailhost.models import MailHost
from mailhost.seed import without_password
from tests.conftest import EDITOR, apps_at

seed_migration = importlib.import_module("mailhost.migrations.0002_seed_from_settings")

HOST_SETTINGS = {
    "MAILADMIN_MAIL_HOSTNAME": "mail.example.net",
    "MAILADMIN_MX_HOSTS": ["mx1.example.net", "mx2.example.net"],
    "MAILADMIN_PUBLIC_IPV4": ["192.0.2.10"],
    "MAILADMIN_PUBLIC_IPV6": ["2001:db8::10"],
    "MAILADMIN_VMAIL_DIR": "/srv/vmail",
    "MAILADMIN_VMAIL_UID": 5001,
    "MAILADMIN_VMAIL_GID": 5002,
    "MAILADMIN_DAEMON_DATABASE_URL": "mysql://reader:s3cret@db.internal:3307/mail",
}
SEEDED = {
    "mail_hostname": "mail.example.net",
    "mx_hosts": ["mx1.example.net", "mx2.example.net"],
    "public_ipv4": ["192.0.2.10"],
    "public_ipv6": ["2001:db8::10"],
    "vmail_dir": "/srv/vmail",
    "vmail_uid": 5001,
    "vmail_gid": 5002,
    "daemon_database": "mysql://reader@db.internal:3307/mail",
}


@pytest.fixture
def host_settings(settings):
    for name, value in HOST_SETTINGS.items():
        setattr(settings, name, value)
    return settings


def fields(host) -> dict:
    return {name: getattr(host, name) for name in SEEDED}


def test_the_migration_seeds_the_row_from_the_settings(db, host_settings):
    seed_migration.seed_from_settings(apps_at("mailhost", "0002_seed_from_settings"), EDITOR)

    assert fields(MailHost.objects.get()) == SEEDED


def test_the_migration_keeps_a_row_that_is_there(db, host_settings):
    MailHost.objects.create(**{**SEEDED, "mail_hostname": "edited.example.net"})

    seed_migration.seed_from_settings(apps_at("mailhost", "0002_seed_from_settings"), EDITOR)

    assert MailHost.objects.get().mail_hostname == "edited.example.net"


def test_current_makes_the_row_from_the_settings_when_there_is_none(db, host_settings):
    assert not MailHost.objects.exists()

    assert fields(MailHost.current()) == SEEDED
    assert MailHost.objects.count() == 1


def test_once_made_the_row_is_read_not_the_settings(db, host_settings):
    MailHost.current()
    host_settings.MAILADMIN_VMAIL_DIR = "/elsewhere"
    host_settings.MAILADMIN_MAIL_HOSTNAME = "other.example.net"

    host = MailHost.current()

    assert (host.vmail_dir, host.mail_hostname) == ("/srv/vmail", "mail.example.net")


def test_there_is_only_one_row(db):
    MailHost.current()

    with pytest.raises(IntegrityError), transaction.atomic():
        MailHost.objects.create(**{**SEEDED, "id": 2})


def test_the_mx_names_fall_back_to_the_mail_hostname(db, host_settings):
    host = MailHost.current()
    assert host.mx_names == ("mx1.example.net", "mx2.example.net")
    host.mx_hosts = []
    host.mail_hostname = "Mail.Example.NET."
    assert host.mx_names == ("mail.example.net",)


@pytest.mark.parametrize(("vmail_dir", "path", "home"), [
    ("/var/vmail", "/var/vmail/example.org/bob", "/var/vmail/%d/%n"),
    ("/srv/mail/", "/srv/mail/example.org/bob", "/srv/mail/%d/%n"),
])
def test_the_maildir_layout_is_the_same_in_python_and_for_dovecot(vmail_dir, path, home):
    host = MailHost(vmail_dir=vmail_dir)
    assert host.maildir_path("bob@example.org") == path
    assert host.dovecot_home == home


@pytest.mark.parametrize(("url", "kept"), [
    ("mysql://ro:secret@127.0.0.1:3306/mail", "mysql://ro@127.0.0.1:3306/mail"),
    ("mysql://ro:@127.0.0.1/mail", "mysql://ro@127.0.0.1/mail"),
    ("mysql://ro@127.0.0.1/mail?socket=/run/mysqld/mysqld.sock",
     "mysql://ro@127.0.0.1/mail?socket=/run/mysqld/mysqld.sock"),
    ("mysql://ro:p%40ss@[::1]:3306/mail", "mysql://ro@[::1]:3306/mail"),
    ("sqlite:////var/lib/mailadmin/mailadmin.sqlite3",
     "sqlite:////var/lib/mailadmin/mailadmin.sqlite3"),
    ("", ""),
])
def test_the_seed_leaves_the_password_out(url, kept):
    assert without_password(url) == kept


def test_mx_hosts_left_at_their_default_follow_the_mail_hostname(db, settings):
    settings.MAILADMIN_MAIL_HOSTNAME = "Mail.Example.org"
    settings.MAILADMIN_MX_HOSTS = ["mail.example.org"]  # the default: the hostname

    host = MailHost.current()

    assert host.mx_hosts == []
    assert host.mx_names == ("mail.example.org",)
