from django.apps import AppConfig


class ClientsetupConfig(AppConfig):
    """What mail programs need to set themselves up: autoconfig, autodiscover, SRV records,
    and the pages that tell a person the same by hand."""

    name = "clientsetup"
