"""The DKIM key registry: the public keys a domain publishes, several at a time.

A domain may have an old and a new key at once (a rotation publishes the new
one before signing with it, and keeps the old one until mail signed with it
has been delivered). Only the fields and states are here; moving keys
between states is for the services.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from domains.models import Domain


class DkimKey(models.Model):
    """One public key a domain publishes under `<selector>._domainkey`."""

    class State(models.TextChoices):
        # The signer uses it; it must be in DNS.
        ACTIVE = "active"
        # In DNS ahead of signing (or after it, until old mail is delivered).
        PUBLISHED = "published"
        # Neither signed with nor expected in DNS; kept as history.
        RETIRED = "retired"

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dkim_keys")
    selector = models.CharField(max_length=63)
    algorithm = models.CharField(max_length=10, default="rsa")
    # The base64 of the DER SubjectPublicKeyInfo (RSA) or raw key (ed25519):
    # exactly what goes after `p=` in the TXT record.
    public_key = models.TextField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    created = models.DateTimeField(default=timezone.now)
    activated = models.DateTimeField(null=True, blank=True)
    retired = models.DateTimeField(null=True, blank=True)
    # Last written: a DNS check that started before this did not see the key as it is.
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "dkim_keys"
        indexes = [models.Index(fields=["domain", "state"], name="dkim_key_domain_state")]

    def __str__(self) -> str:
        return f"{self.selector}._domainkey.{self.domain.name}"

# The states dnscheck expects in DNS.
EXPECTED_STATES = (DkimKey.State.ACTIVE, DkimKey.State.PUBLISHED)
