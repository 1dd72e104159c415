from django.apps import AppConfig


class DkimConfig(AppConfig):
    """The DKIM keys each domain publishes: the registry dnscheck compares DNS with."""

    name = "dkim"

    def ready(self) -> None:
        # The renderer (mailhost, below this app) signs with the keys read here,
        # and a domain's deletion (domains, below too) keeps its keys as history.
        from dkim import checklist, selectors, services
        from domains import services as domain_services
        from domains.checklist import add_item_source
        from mailhost import render

        render.read_signing_keys_with(selectors.signing_keys)
        domain_services.on_domain_deletion(services.keep_keys_of_deleted_domain)
        add_item_source(checklist.key_active)
