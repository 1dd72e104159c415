from django.apps import AppConfig


class DomainsConfig(AppConfig):
    name = "domains"

    def ready(self) -> None:
        from domains import search  # noqa: F401  (registers the prefix and folded lookups)
