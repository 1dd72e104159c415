"""A mailbox's auto-reply and forwarding, and the Sieve script made from them.

`MailRules` is what the person chose; `SieveScript` is what Dovecot reads
(Pigeonhole's dict storage through a SQL dict, see mailhost/render.py):
`priv/sieve/name/mailadmin` gives a row's id, `priv/sieve/data/<id>` its
script. Pigeonhole keeps the compiled script under that id, so a changed
script is a new row with a new id, never an update in place.
"""

from __future__ import annotations

from django.db import models

from domains.models import Mailbox

# The name Dovecot asks for (sieve_before = dict:...;name=mailadmin).
SCRIPT_NAME = "mailadmin"


class MailRules(models.Model):
    mailbox = models.OneToOneField(Mailbox, on_delete=models.CASCADE, related_name="mail_rules")
    reply_enabled = models.BooleanField(default=False)
    reply_subject = models.CharField(max_length=200, blank=True, default="")
    reply_text = models.TextField(blank=True, default="")
    # Inclusive days in the mail host's local time; empty is open-ended.
    reply_from = models.DateField(null=True, blank=True)
    reply_until = models.DateField(null=True, blank=True)
    # One reply per sender within this many days (Sieve vacation :days).
    reply_days = models.PositiveSmallIntegerField(default=7)
    # Comma-separated addresses, lowercase; empty is no forwarding.
    forward_to = models.TextField(blank=True, default="")
    forward_keep = models.BooleanField(default=True)
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "mail_rules"

    def __str__(self) -> str:
        return f"mail rules of {self.mailbox_id}"

    @property
    def forward_list(self) -> list[str]:
        return [a for a in self.forward_to.split(",") if a]


class SieveScript(models.Model):
    """Read by Dovecot's dict process: one row per mailbox that has rules in force."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="+")
    # Dovecot's user name (the address, lowercase): the dict's username_field.
    username = models.CharField(max_length=254)
    name = models.CharField(max_length=64, default=SCRIPT_NAME)
    script = models.TextField()

    class Meta:
        db_table = "sieve_scripts"
        constraints = [models.UniqueConstraint(fields=["username", "name"],
                                               name="sieve_script_once")]

    def __str__(self) -> str:
        return f"{self.name} for {self.username}"
