from django.apps import AppConfig


class VacationConfig(AppConfig):
    """A mailbox's auto-reply and forwarding: the Sieve script the panel owns for it,
    which Dovecot runs before the user's own (Pigeonhole's sieve_before)."""

    name = "vacation"
