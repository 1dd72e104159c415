"""App passwords: a mailbox's extra passwords for mail programs.

Dovecot reads this table (the rendered second passdb, mailhost/render.py)
with a one-row lookup: the token a user gets starts with its row's
`selector`, a unique column, so the daemon's query finds at most one row and
checks the hash of the whole token against it. Dovecot 2.3's SQL passdb
fails outright when a query returns several rows.
"""

from __future__ import annotations

from django.db import models

from domains.models import Mailbox

SELECTOR_LENGTH = 8
SECRET_LENGTH = 24
# Lowercase letters and digits without the look-alikes (0/o, 1/l/i): typed
# by hand into a phone's mail settings as often as pasted.
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class AppPassword(models.Model):
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="app_passwords")
    name = models.CharField(max_length=100)
    # The token's first SELECTOR_LENGTH characters: the daemons' one-row key.
    selector = models.CharField(max_length=SELECTOR_LENGTH, unique=True)
    # The hash of the whole token, in the mailbox passwords' scheme.
    password = models.CharField(max_length=255)
    imap = models.BooleanField(default=True)
    smtp = models.BooleanField(default=True)
    sieve = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "app_passwords"
        ordering = ["-created", "-pk"]
        indexes = [models.Index(fields=["mailbox", "revoked"], name="app_passwords_mailbox")]

    def __str__(self) -> str:
        return f"{self.name} ({self.mailbox_id})"

    @property
    def protocols(self) -> list[str]:
        return [label for label, on in (("IMAP", self.imap), ("SMTP", self.smtp),
                                        ("Sieve", self.sieve)) if on]
