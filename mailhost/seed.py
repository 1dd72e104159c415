"""The mail host as the settings describe it: the first row's values.

Settings seed the row once (the data migration, or MailHost.current() on a
database without one); after that the row is what the code reads. Kept free of
models so the data migration (0002) can use it: a field added later gets its
own migration, and the keys here stay those of 0001's fields.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings


def without_password(url: str) -> str:
    """`url` with any password taken out: the row never holds a secret."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{hostport}" if user else hostport))


def fields_from_settings() -> dict[str, Any]:
    hostname = str(settings.MAILADMIN_MAIL_HOSTNAME)
    mx_hosts = list(settings.MAILADMIN_MX_HOSTS)
    return {
        "mail_hostname": hostname,
        # MAILADMIN_MX_HOSTS defaults to the mail hostname: then the row leaves
        # it empty, so the MX name follows a later change of the hostname.
        "mx_hosts": [] if mx_hosts == [hostname.lower().rstrip(".")] else mx_hosts,
        "public_ipv4": list(settings.MAILADMIN_PUBLIC_IPV4),
        "public_ipv6": list(settings.MAILADMIN_PUBLIC_IPV6),
        "vmail_dir": str(settings.MAILADMIN_VMAIL_DIR),
        "vmail_uid": int(settings.MAILADMIN_VMAIL_UID),
        "vmail_gid": int(settings.MAILADMIN_VMAIL_GID),
        "daemon_database": without_password(settings.MAILADMIN_DAEMON_DATABASE_URL),
    }
