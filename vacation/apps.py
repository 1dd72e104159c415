from django.apps import AppConfig


class VacationConfig(AppConfig):
    """A mailbox's auto-reply and forwarding: the Sieve script the panel owns for it,
    which Dovecot runs before the user's own (Pigeonhole's sieve_before)."""

    name = "vacation"

    def ready(self) -> None:
        # The auto-reply lists the mailbox's aliases and alias-domain addresses:
        # their writers (domains, below this app) tell it when those change.
        from domains.address_changes import on_addresses_changed
        from vacation import services

        on_addresses_changed(services.refresh_reply_addresses)
