from __future__ import annotations

import ipaddress
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from mailhost import validators
from mailhost.models import MailHost

LIST_HELP = "Separated by commas or spaces."


def _items(text: str) -> list[str]:
    return list(dict.fromkeys(text.replace(",", " ").split()))


def _host_name(text: str) -> str:
    name = text.strip().lower().rstrip(".")
    validators.validate_host_name(name)
    return name


def _addresses(text: str, version: int) -> list[str]:
    result = []
    for item in _items(text):
        try:
            address = ipaddress.ip_address(item)
        except ValueError:
            raise ValidationError(f"{item!r} is not an IPv{version} address.") from None
        if address.version != version:
            raise ValidationError(f"{item!r} is not an IPv{version} address.")
        result.append(str(address))
    return result


class MailHostNamesForm(forms.Form):
    """The host's names and public addresses: the part of the row DNS records are made of."""

    mail_hostname = forms.CharField(label="Mail host name", max_length=validators.HOST_NAME_MAX,
                                    help_text="This server's own name (Postfix myhostname).")
    mx_hosts = forms.CharField(
        label="MX host names", required=False, max_length=1000,
        help_text="What MX records should name; the first is what PTR records should give. "
                  "Empty: the mail host name. " + LIST_HELP)
    public_ipv4 = forms.CharField(label="Public IPv4 addresses", required=False,
                                  max_length=1000, help_text=LIST_HELP)
    public_ipv6 = forms.CharField(label="Public IPv6 addresses", required=False,
                                  max_length=1000, help_text=LIST_HELP)

    def clean_mail_hostname(self) -> str:
        return _host_name(self.cleaned_data["mail_hostname"])

    def clean_mx_hosts(self) -> list[str]:
        return [_host_name(item) for item in _items(self.cleaned_data["mx_hosts"])]

    def clean_public_ipv4(self) -> list[str]:
        return _addresses(self.cleaned_data["public_ipv4"], 4)

    def clean_public_ipv6(self) -> list[str]:
        return _addresses(self.cleaned_data["public_ipv6"], 6)


class MailHostForm(MailHostNamesForm):
    vmail_dir = forms.CharField(label="Maildir root", max_length=255,
                                validators=[validators.validate_vmail_dir],
                                help_text="Mail lives in ROOT/<domain>/<local part>.")
    vmail_uid = forms.IntegerField(label="Mail user id", min_value=1, max_value=validators.ID_MAX)
    vmail_gid = forms.IntegerField(label="Mail group id", min_value=1,
                                   max_value=validators.ID_MAX)
    daemon_database = forms.CharField(
        label="Daemons' database", required=False, max_length=500,
        validators=[validators.validate_daemon_database],
        help_text="What Postfix and Dovecot connect to, without the password (it stays in "
                  "MAILADMIN_DAEMON_DATABASE_URL): mysql://user@host:port/name or "
                  "sqlite:////path. Empty: the panel's database, as user mailadmin_ro.")

    @classmethod
    def of(cls, host: MailHost, data: Any = None) -> MailHostForm:
        return cls(data, initial={
            "mail_hostname": host.mail_hostname,
            "mx_hosts": ", ".join(host.mx_hosts),
            "public_ipv4": ", ".join(host.public_ipv4),
            "public_ipv6": ", ".join(host.public_ipv6),
            "vmail_dir": host.vmail_dir,
            "vmail_uid": host.vmail_uid,
            "vmail_gid": host.vmail_gid,
            "daemon_database": host.daemon_database,
        })


class SetupForm(MailHostNamesForm):
    """Step 1 of the first-day setup: stricter than the Mail host page, which
    accepts the embedded default (a machine name, no addresses) as it is."""

    @classmethod
    def of(cls, host: MailHost, data: Any = None) -> SetupForm:
        # The default name is no suggestion: an empty field asks for the real one.
        return cls(data, initial={
            "mail_hostname": host.mail_hostname if host.has_public_name else "",
            "mx_hosts": ", ".join(h for h in host.mx_hosts if validators.is_public_host_name(h)),
            "public_ipv4": ", ".join(host.public_ipv4),
            "public_ipv6": ", ".join(host.public_ipv6),
        })

    def clean_mail_hostname(self) -> str:
        name = super().clean_mail_hostname()
        if not validators.is_public_host_name(name):
            raise ValidationError(
                f"{name!r} is not a public DNS name: give the name mail programs and other "
                "mail servers reach this host by, e.g. mail.example.org.")
        return name

    def clean_mx_hosts(self) -> list[str]:
        names = super().clean_mx_hosts()
        for name in names:
            if not validators.is_public_host_name(name):
                raise ValidationError(f"{name!r} is not a public DNS name.")
        return names

    def _reachable(self, field: str, version: int) -> list[str]:
        addresses = _addresses(self.cleaned_data[field], version)
        for address in addresses:
            if not validators.is_reachable_address(address):
                raise ValidationError(f"{address} cannot be reached from other machines.")
        return addresses

    def clean_public_ipv4(self) -> list[str]:
        return self._reachable("public_ipv4", 4)

    def clean_public_ipv6(self) -> list[str]:
        return self._reachable("public_ipv6", 6)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if ("public_ipv4" in data and "public_ipv6" in data
                and not data["public_ipv4"] and not data["public_ipv6"]):
            self.add_error("public_ipv4", "Give at least one public address, IPv4 or IPv6: "
                                          "SPF, A/AAAA and PTR records are made of them.")
        return data
