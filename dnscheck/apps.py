from django.apps import AppConfig


class DnscheckConfig(AppConfig):
    name = "dnscheck"

    def ready(self) -> None:
        # A domain's checklist (domains, below this app) shows whether its
        # records are published, as the latest check found them.
        from dnscheck import checklist
        from domains.checklist import add_item_source

        add_item_source(checklist.records_published)
