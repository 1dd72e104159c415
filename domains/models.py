"""The tables Postfix and Dovecot read.

Table and column names follow the classic virtual-mail recipe (`domains`,
`users`, `aliases` with `domain_id`, `email`, `password`, `source`,
`destinations`) so a server built from it keeps its daemon queries. Every
column a daemon query filters on is unique or indexed.
"""

from __future__ import annotations

import datetime
from typing import Any, ClassVar

from django.db import models
from django.db.models.functions import Lower

from core.jobs import ProgressJob


class Domain(models.Model):
    name = models.CharField(max_length=253, unique=True)
    description = models.CharField(max_length=255, blank=True, default="")
    active = models.BooleanField(default=True)
    # 0 means no limit, for all four.
    max_mailboxes = models.PositiveIntegerField(default=0)
    max_aliases = models.PositiveIntegerField(default=0)
    max_quota = models.PositiveBigIntegerField(default=0, help_text="bytes, all mailboxes")
    default_quota = models.PositiveBigIntegerField(default=0, help_text="bytes, per mailbox")
    # Mail programs sign in with app passwords only: the main password then
    # signs in to the panel alone (Dovecot's main passdb query leaves it out).
    require_app_passwords = models.BooleanField(default=False, db_default=False)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "domains"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Mailbox(models.Model):
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="mailboxes")
    email = models.CharField(max_length=254, unique=True)
    # Dovecot's {SCHEME}hash form; see domains.passwords.
    password = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True, default="")
    quota = models.PositiveBigIntegerField(default=0, help_text="bytes; 0 is unlimited")
    active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)
    password_changed = models.DateTimeField(null=True, blank=True)
    # What Dovecot counted in it (QuotaUsage), joined on the address: Dovecot
    # knows no ids. No column and no constraint: a mailbox Dovecot has not
    # written yet has no row, and a deleted one's row may linger.
    usage = models.ForeignObject(
        "QuotaUsage", on_delete=models.DO_NOTHING, from_fields=["email"],
        to_fields=["username"], related_name="+", null=True)

    class Meta:
        db_table = "users"
        ordering = ["email"]
        indexes = [
            # A domain's mailboxes in address order, and a search within it.
            models.Index(fields=["domain", "email"], name="users_domain_email"),
            # Search by display name without case (domains.search.Folded):
            # MariaDB folds case in the column's collation and uses the
            # first; SQLite uses the second (MariaDB does not create it).
            models.Index(fields=["name", "email"], name="users_name_email"),
            models.Index(Lower("name"), "email", name="users_name_lower_email"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def local_part(self) -> str:
        return self.email.rsplit("@", 1)[0]


class Alias(models.Model):
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="aliases")
    # `@domain` is the domain's catch-all.
    source = models.CharField(max_length=254, unique=True)
    # Comma-separated, no spaces: Postfix returns the column as the alias's expansion.
    destinations = models.TextField()
    active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "aliases"
        ordering = ["source"]
        # A domain's aliases in address order, and a search within it.
        indexes = [models.Index(fields=["domain", "source"], name="aliases_domain_source")]
        verbose_name_plural = "aliases"

    def __str__(self) -> str:
        return self.source

    @property
    def is_catchall(self) -> bool:
        return self.source.startswith("@")

    @property
    def destination_list(self) -> list[str]:
        return [d for d in self.destinations.split(",") if d]


class AliasDomain(models.Model):
    """`name` receives for every mailbox and alias of `target`."""

    name = models.CharField(max_length=253, unique=True)
    target = models.ForeignKey(
        Domain, on_delete=models.PROTECT, related_name="alias_domains",
        db_column="target_domain_id",
    )
    active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "alias_domains"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ImportJob(ProgressJob):
    """A previewed CSV import, waiting for confirmation or being run by a task.

    Queued from the preview on; `confirmed` set by the admin's confirm, which
    enqueues the task (an unconfirmed queued job is a preview awaiting it).
    `rows` holds the validated rows in a compact list-of-lists form: password
    hashes, or plaintext sealed (domains.sealed) until the task hashes it,
    `hashed` rows at a time; it is emptied when the job ends, so neither
    lingers. `generated` holds the passwords generated for empty cells,
    sealed, from the end of the import until its uploader downloads them
    once, or for GENERATED_KEPT at most.
    """

    class Kind(models.TextChoices):
        MAILBOXES = "mailboxes", "Mailboxes"
        ALIASES = "aliases", "Aliases"

    # A 200,000-mailbox import takes a few minutes; domains.tasks.run_import's hard limit.
    time_limit = 960
    task_names = ("domains.run_import", "domains.continue_import")
    lost_error = ("The worker running the import stopped (it was killed or restarted); "
                  "nothing was imported. Upload the file again.")
    lost_changes: ClassVar[dict[str, Any]] = {"rows": []}
    # How long generated passwords wait for their one download after the import.
    GENERATED_KEPT: ClassVar[datetime.timedelta] = datetime.timedelta(hours=1)

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="import_jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    actor = models.CharField(max_length=254)
    confirmed = models.DateTimeField(null=True, blank=True)
    rows = models.JSONField(default=list)
    # How far the hashing of sealed plaintext has got (rows before it are hashed).
    hashed = models.PositiveIntegerField(default=0, db_default=0)
    generated = models.TextField(blank=True, default="")

    class Meta:
        db_table = "import_jobs"
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} import #{self.pk} into {self.domain_id}"


class KeptMaildir(models.Model):
    """A deleted mailbox's Maildir, left on disk, until it is removed or reused.

    Written by the delete in its transaction. While a row is open (neither
    `removed_at` nor `reused_at`), the address cannot become a mailbox again
    unless a superadmin chooses to hand it the kept mail: a new person must
    never silently receive a previous person's mail.

    `domain_ref` is the id of the domain the mailbox was in (not a foreign
    key: that domain may be gone). A domain created again under the same
    name is a new tenant: its admins are never answered from an earlier
    domain's rows, and create_domain makes a superadmin settle those first.
    """

    address = models.CharField(max_length=254, db_index=True)
    domain_ref = models.IntegerField(null=True, blank=True)
    path = models.CharField(max_length=1024)
    deleted_at = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True)
    reused_at = models.DateTimeField(null=True, blank=True)
    # Set when a superadmin or the grace-period sweep asks the agent to remove
    # the directory; the row stays open until the agent says it is gone.
    purge_requested_at = models.DateTimeField(null=True, blank=True)
    # The helper's last refusal or failure, kept until a removal succeeds. A
    # database default too: rows written by code that predates the column.
    removal_error = models.CharField(max_length=500, blank=True, default="", db_default="")

    class Meta:
        db_table = "kept_maildirs"
        ordering = ["address", "-deleted_at"]

    def __str__(self) -> str:
        return f"{self.address} ({self.path})"

    @property
    def is_open(self) -> bool:
        return self.removed_at is None and self.reused_at is None

    @property
    def is_being_removed(self) -> bool:
        return self.is_open and self.purge_requested_at is not None

    @staticmethod
    def refusal(address: str) -> str:
        """Why `address` cannot be a new mailbox yet: no reason, no path.

        The same words whether the Maildir was this domain's or reserved from
        an earlier domain of the name: a domain admin learns nothing of a
        previous tenant's mailboxes beyond that the address is not free.
        """
        return f"{address} cannot be used; ask a superadmin."


class DomainAdmin(models.Model):
    """A panel account that manages the mailboxes, aliases and alias domains of a domain.

    The grant belongs with the domain it opens: `domains.access` decides
    every page's reach from it without looking upward into accounts.
    """

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="domain_grants")
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE,
                               related_name="admin_grants")

    class Meta:
        db_table = "domain_admins"
        constraints = [models.UniqueConstraint(fields=["user", "domain"],
                                               name="domain_admin_once")]

    def __str__(self) -> str:
        return f"{self.user.username} -> {self.domain.name}"


class QuotaUsage(models.Model):
    """What Dovecot counts in a mailbox, written by Dovecot itself.

    Dovecot's `quota_clone` plugin copies each mailbox's quota usage here
    through its dict-sql map (deploy/templates/dovecot/dovecot-dict-sql.conf.ext)
    after every change: the table and column names are the daemons' and must
    not change. On MariaDB the daemons' user may write this table and no other;
    on SQLite Dovecot writes a small file of its own that `quota_usage sync`
    copies here (domains.quota_file). The panel only reads it, keyed by address
    (Dovecot knows no ids), so a deleted mailbox's row is harmless.
    """

    username = models.CharField(max_length=254, primary_key=True)
    # Dovecot inserts one column at a time: the other needs a database default.
    bytes = models.BigIntegerField(default=0, db_default=0)
    messages = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        db_table = "quota_usage"
        indexes = [
            # The mailbox list's "most stored first", in index order (the
            # address breaks ties, so a page needs no sort).
            models.Index(fields=["-bytes", "username"], name="quota_usage_bytes"),
        ]

    def __str__(self) -> str:
        return f"{self.username}: {self.bytes} bytes"
