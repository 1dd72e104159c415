from django.apps import AppConfig


class AppPasswordsConfig(AppConfig):
    """Named, revocable passwords a mailbox gives its mail programs, each limited
    to the protocols chosen; Dovecot checks them in a second passdb."""

    name = "apppasswords"
    verbose_name = "app passwords"
