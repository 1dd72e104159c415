from django.apps import AppConfig


class DkimConfig(AppConfig):
    """The DKIM keys each domain publishes: the registry dnscheck compares DNS with."""

    name = "dkim"
