from django.apps import AppConfig


class DkimConfig(AppConfig):
    """The DKIM keys each domain publishes: the registry dnscheck compares DNS with."""

    name = "dkim"

    def ready(self) -> None:
        # The renderer (mailhost, below this app) signs with the keys read here.
        from dkim import selectors
        from mailhost import render

        render.read_signing_keys_with(selectors.signing_keys)
