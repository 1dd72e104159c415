"""The mail host: one row holding the facts about the server the daemons run on.

Settings (MAILADMIN_MAIL_HOSTNAME, MAILADMIN_VMAIL_DIR, ...) seed the row once;
after that the row is what rendering, the DNS checks and the Maildir layout
read, and superadmins edit it on the Mail host page. No password is kept here:
the daemons' database password stays in MAILADMIN_DAEMON_DATABASE_URL.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, ClassVar

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from core.jobs import Job
from mailhost import validators
from mailhost.seed import fields_from_settings

# The one row's key: a second host would be a second row, not new code.
THIS_HOST = 1


class MailHost(models.Model):
    id = models.PositiveSmallIntegerField(primary_key=True, default=THIS_HOST, editable=False)
    mail_hostname = models.CharField(
        max_length=validators.HOST_NAME_MAX, validators=[validators.validate_host_name],
        help_text="The server's own name (Postfix myhostname).")
    # Empty: the MX name is the mail hostname.
    mx_hosts = models.JSONField(
        default=list, blank=True, validators=[validators.validate_host_names],
        help_text="What MX records should name; the first is what PTR records should give.")
    public_ipv4 = models.JSONField(default=list, blank=True,
                                   validators=[validators.validate_ipv4_list])
    public_ipv6 = models.JSONField(default=list, blank=True,
                                   validators=[validators.validate_ipv6_list])
    vmail_dir = models.CharField(max_length=255, validators=[validators.validate_vmail_dir],
                                 help_text="Maildirs live in DIR/<domain>/<local part>.")
    vmail_uid = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(validators.ID_MAX)])
    vmail_gid = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(validators.ID_MAX)])
    # Blank: the panel's own database, as the read-only user mailadmin_ro.
    daemon_database = models.CharField(
        max_length=500, blank=True, validators=[validators.validate_daemon_database],
        help_text="What Postfix and Dovecot connect to, without a password.")
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(id=THIS_HOST), name="mailhost_one_row"),
        ]

    def __str__(self) -> str:
        return self.mail_hostname

    @classmethod
    def current(cls) -> MailHost:
        """This host's row, made from the settings when the database has none yet."""
        host, _ = cls.objects.get_or_create(pk=THIS_HOST, defaults=fields_from_settings())
        return host

    @property
    def queue(self) -> str:
        """The Celery queue this host's agent consumes: every host operation goes there.

        A second host is a second row and a second agent worker on that queue.
        """
        return "host." + self.mail_hostname.lower().rstrip(".")

    @property
    def has_public_name(self) -> bool:
        """Whether the mail host name can be given to mail programs and DNS records."""
        return validators.is_public_host_name(self.mail_hostname)

    @property
    def is_set_up(self) -> bool:
        """Past the embedded default: a public name and at least one public address.

        Until then the dashboard leads a superadmin to the setup page, and no
        page advises the default name (often `localhost`) to anyone.
        """
        return self.has_public_name and bool(self.public_ipv4 or self.public_ipv6)

    @property
    def mx_names(self) -> tuple[str, ...]:
        """What MX records should name: the MX hosts, else the mail hostname."""
        return tuple(self.mx_hosts) or (self.mail_hostname.lower().rstrip("."),)

    # The Maildir layout, in Python and as Dovecot expands it: keep the two together.

    def maildir_path(self, email: str) -> str:
        """Home of a mailbox on this host; the rendered Dovecot config uses the same."""
        local, domain = email.rsplit("@", 1)
        return str(PurePosixPath(self.vmail_dir) / domain / local)

    @property
    def dovecot_home(self) -> str:
        """maildir_path as a Dovecot user_query expression (%d domain, %n local part)."""
        return f"{self.vmail_dir.rstrip('/')}/%d/%n"


class ConfigApply(Job):
    """One apply (or check) of the rendered configuration on a host: a job whose
    fields are its history.

    Never holds file content or a diff: the rendered files carry the daemons'
    database password. `changes` holds names and line counts only.
    """

    class Outcome(models.TextChoices):
        NOTHING_TO_CHANGE = "nothing", "Nothing to change"
        WOULD_CHANGE = "would_change", "Would change"
        CHECK_FAILED = "check_failed", "Checker refused"
        APPLIED = "applied", "Applied"
        ROLLED_BACK = "rolled_back", "Probe failed, rolled back"
        ERROR = "error", "Error"

    host = models.ForeignKey(MailHost, on_delete=models.CASCADE, related_name="applies")
    # Who asked, as an actor's label: a panel account or `cli:<login>`.
    requested_by = models.CharField(max_length=254, default="")
    check_only = models.BooleanField(default=True)
    # [{"path": "postfix/main.cf", "status": "changed", "added": 2, "removed": 1}, ...]
    changes = models.JSONField(default=list, blank=True)
    checker_output = models.TextField(blank=True, default="")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True, default="")
    # What an apply (not a check) did through the root helper:
    # {"postfix": "20261202T132800.123456Z"}: the helper's backup of what it replaced.
    backups = models.JSONField(default=dict, blank=True)
    # ["postfix"]: the daemons reloaded (only those whose files changed).
    reloaded = models.JSONField(default=list, blank=True)
    # [{"name": "smtp", "target": "127.0.0.1:25", "ok": true, "skipped": false,
    #   "detail": "220 mx ESMTP", "attempts": 1}, ...]
    probes = models.JSONField(default=list, blank=True)
    # The backups were put back (and the daemons reloaded) after a failed probe or step.
    rolled_back = models.BooleanField(default=False)

    # The hard time limit of mailhost.apply_config: rendering, the checkers
    # (30 s each at most, the helper's up to 120 s), install, reload and probes.
    time_limit: ClassVar[int] = 300
    task_names = ("mailhost.apply_config",)
    lost_error = "the agent stopped before the apply finished"
    lost_changes: ClassVar[dict[str, Any]] = {"outcome": "error"}

    class Meta:
        db_table = "mailhost_config_applies"
        indexes = [models.Index(fields=["host", "state"], name="mailhost_apply_open")]

    def __str__(self) -> str:
        kind = "check" if self.check_only else "apply"
        return f"{self.host.mail_hostname} {kind} {self.pk} ({self.state})"
