from django.db import models


class AuditEntry(models.Model):
    """One write of the panel: who did what to which object, before and after.

    Plain values, not foreign keys, so history outlives what it describes.
    Secrets never reach `before`/`after`: services pass snapshots made by
    `core.audit.snapshot`, which leaves password hashes out.
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    # actor, action and domain are indexed with parent and at (Meta.indexes):
    # the log's filters, newest first, events only.
    actor = models.CharField(max_length=254)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.BigIntegerField(null=True)
    object_repr = models.CharField(max_length=254)
    domain = models.CharField(max_length=253, blank=True, default="")
    # The domain's id, not a foreign key: the row outlives the domain, and a
    # later domain of the same name (a new id) must not see it. Pages scope
    # by this; `domain` is the name shown.
    # Indexed first in audit_log_scope_at (Meta.indexes).
    domain_ref = models.IntegerField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    # The id of the row of the event this row is part of (an import's
    # `domain.import` row), or null for a row of its own. Not a foreign key,
    # like the rest: the log lists rows without one and folds the others
    # under their event.
    parent = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "audit_log"
        ordering = ["-at", "-id"]
        indexes = [
            # The log's pages, newest first: the events of everything (superadmin),
            # or of the admin's domains, and the rows of one event.
            models.Index(fields=["parent", "at", "id"], name="audit_log_parent_at"),
            models.Index(fields=["domain_ref", "parent", "at"], name="audit_log_scope_at"),
            # The filters; each also serves a plain lookup of its first column.
            models.Index(fields=["actor", "parent", "at"], name="audit_log_actor_at"),
            models.Index(fields=["action", "parent", "at"], name="audit_log_action_at"),
            models.Index(fields=["domain", "parent", "at"], name="audit_log_domain_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.object_repr}"
