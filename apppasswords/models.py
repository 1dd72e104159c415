"""App passwords: a mailbox's extra passwords for mail programs.

Dovecot reads this table (the rendered second passdb, mailhost/render.py)
with a one-row lookup: `lookup`, a unique column, is a salted hash of the
whole token that Dovecot computes from the typed password
(mailhost/app_password_lookup.py), so the daemon's query finds at most one
row, carries no password, and checks the token's hash against the row.
Dovecot 2.3's SQL passdb fails outright when a query returns several rows.
"""

from __future__ import annotations

from django.db import models

from domains.models import Mailbox
from mailhost.app_password_lookup import LOOKUP_LENGTH

SELECTOR_LENGTH = 8
SECRET_LENGTH = 24
# Lowercase letters and digits without the look-alikes (0/o, 1/l/i): typed
# by hand into a phone's mail settings as often as pasted.
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
# What last_service may hold, and how the page names it.
USAGE_SERVICES = {"imap": "IMAP", "smtp": "SMTP", "sieve": "Sieve"}


class AppPassword(models.Model):
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="app_passwords")
    name = models.CharField(max_length=100)
    # The token's first SELECTOR_LENGTH characters: shown to tell tokens
    # apart ("starts with ..."); no longer what the daemons look up.
    selector = models.CharField(max_length=SELECTOR_LENGTH, unique=True)
    # The daemons' one-row key: app_password_lookup.lookup_value(token). Rows
    # made before it existed hold "-" + selector (no hex hash equals it) and
    # were revoked by migration 0002.
    lookup = models.CharField(max_length=LOOKUP_LENGTH, unique=True)
    # The hash of the whole token, in the mailbox passwords' scheme.
    password = models.CharField(max_length=255)
    imap = models.BooleanField(default=True)
    smtp = models.BooleanField(default=True)
    sieve = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    revoked = models.DateTimeField(null=True, blank=True)
    # Its last sign-in that Dovecot checked (not one answered from its auth
    # cache): when, from which address, for which service (a USAGE_SERVICES
    # key). Copied in from the mail host's usage file (apppasswords.usage).
    last_used = models.DateTimeField(null=True, blank=True)
    last_ip = models.GenericIPAddressField(null=True, blank=True)
    last_service = models.CharField(max_length=8, blank=True, default="")

    class Meta:
        db_table = "app_passwords"
        ordering = ["-created", "-pk"]
        indexes = [models.Index(fields=["mailbox", "revoked"], name="app_passwords_mailbox")]

    def __str__(self) -> str:
        return f"{self.name} ({self.mailbox_id})"

    @property
    def last_service_label(self) -> str:
        return USAGE_SERVICES.get(self.last_service, "")

    @property
    def protocols(self) -> list[str]:
        return [label for label, on in (("IMAP", self.imap), ("SMTP", self.smtp),
                                        ("Sieve", self.sieve)) if on]
