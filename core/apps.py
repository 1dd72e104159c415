from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The ground floor: actors, the audit log, jobs and the plumbing of views and commands."""

    name = "core"
