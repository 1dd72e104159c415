"""The DKIM key registry: the keys a domain publishes, several at a time, with their lifecycle.

    pending -> published -> active -> retiring -> revoked -> gone

A domain may have an old and a new key at once: a rotation publishes the new
one before signing with it, and keeps the old one in DNS until mail signed
with it has been verified. Only the fields and states are here; moving keys
between states is for the services (dkim/services.py).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from domains.models import Domain


class DkimKey(models.Model):
    """One key a domain publishes under `<selector>._domainkey`."""

    class State(models.TextChoices):
        # Made (or being made on the mail host); its record is not confirmed in DNS yet.
        PENDING = "pending"
        # Its record has been seen on every authoritative server for at least its TTL.
        PUBLISHED = "published"
        # The signer uses it; it must be in DNS.
        ACTIVE = "active"
        # No longer signs; its record stays until mail signed with it has been verified.
        RETIRING = "retiring"
        # Its record should now say p= (empty); the private key is still on disk.
        REVOKED = "revoked"
        # History: the private key file is removed.
        GONE = "gone"

    class Algorithm(models.TextChoices):
        RSA = "rsa"
        ED25519 = "ed25519"

    # Empty once the domain is deleted: the row stays as history (a deleted
    # domain's audit rows name its keys, and its key files are removed from
    # the mail host through this row; services.keep_keys_of_deleted_domain).
    domain = models.ForeignKey(Domain, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="dkim_keys")
    # The deleted domain's name (empty while the domain exists).
    deleted_domain = models.CharField(max_length=253, blank=True, default="")
    selector = models.CharField(max_length=63)
    algorithm = models.CharField(max_length=10, default=Algorithm.RSA,
                                 choices=Algorithm.choices)
    bits = models.PositiveIntegerField(default=0)
    # The base64 of the DER SubjectPublicKeyInfo (RSA) or raw key (ed25519):
    # exactly what goes after `p=` in the TXT record. Empty while the mail
    # host has not made the key yet. The private key is never in the database.
    public_key = models.TextField(blank=True, default="")
    # Made elsewhere and set by hand: no private key on this host, so the panel
    # never signs with it nor removes a file for it.
    external = models.BooleanField(default=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    created = models.DateTimeField(default=timezone.now)
    # When every authoritative server first showed the record, and when it had
    # shown it for its TTL (the key became published).
    published_seen_at = models.DateTimeField(null=True, blank=True)
    published = models.DateTimeField(null=True, blank=True)
    activated = models.DateTimeField(null=True, blank=True)
    retiring_since = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)
    # The private key file was removed (the key is gone).
    removed = models.DateTimeField(null=True, blank=True)
    # The record's TTL as the authoritative servers gave it (the largest).
    ttl_seen = models.PositiveIntegerField(null=True, blank=True)
    # The last publish check, and why the key is not advancing (empty: nothing wrong).
    checked = models.DateTimeField(null=True, blank=True)
    problem = models.CharField(max_length=500, blank=True, default="")
    # Last written: a DNS check that started before this did not see the key as it is.
    modified = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "dkim_keys"
        indexes = [models.Index(fields=["domain", "state"], name="dkim_key_domain_state")]

    def __str__(self) -> str:
        return self.owner

    @property
    def domain_name(self) -> str:
        """The domain's name, or the deleted domain's."""
        return self.domain.name if self.domain is not None else self.deleted_domain

    @property
    def owner(self) -> str:
        """The DNS name of the key's record, without the final dot."""
        return f"{self.selector}._domainkey.{self.domain_name}"


# The states dnscheck expects in DNS (a pending key only once it has a public key).
EXPECTED_STATES = (DkimKey.State.PENDING, DkimKey.State.PUBLISHED, DkimKey.State.ACTIVE,
                   DkimKey.State.RETIRING)
# Keys whose private key is on the mail host (unless external): every state but gone.
LIVE_STATES = (*EXPECTED_STATES, DkimKey.State.REVOKED)


class DkimRotation(models.Model):
    """A domain's rotation schedule, when it differs from MAILADMIN_DKIM_ROTATE_DAYS.

    No row: the default interval. `days` 0: never rotated unattended (the
    rotate button and command still work).
    """

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="dkim_rotation")
    days = models.PositiveIntegerField()

    class Meta:
        db_table = "dkim_rotations"

    def __str__(self) -> str:
        return f"{self.domain.name}: {'off' if not self.days else f'every {self.days} days'}"
