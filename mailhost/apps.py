from django.apps import AppConfig


class MailHostConfig(AppConfig):
    """The mail host: its names, addresses, Maildir layout and daemon configuration."""

    name = "mailhost"
    verbose_name = "Mail host"
