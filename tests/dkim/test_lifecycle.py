"""The DKIM lifecycle's service functions: each move's rules, its audit row, its refusals.

Generation here stops at the pending row (the host's task is not run: its
tests, with the real helper, are in test_keygen.py).
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEntry
from core.resolver import Answer
from dkim import records, selectors, services
from dkim.models import DkimKey
from dkim.services import Observation
from dnscheck import checks
from dnscheck.findings import DkimExpected, Identity, Target
from dnscheck.models import Verdict
from domains import services as domain_services
from domains.models import Domain

pytestmark = pytest.mark.django_db
State = DkimKey.State


def rsa_public(bits: int = 2048) -> str:
    der = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key() \
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def ed_public() -> str:
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@pytest.fixture
def domain() -> Domain:
    return domain_services.create_domain(actor="t", name="a.example")


@pytest.fixture
def helper(settings):
    """A helper command that is never run here (the task is not), so generation is allowed."""
    settings.MAILADMIN_HELPER_COMMAND = ["/bin/false"]


def key_in(domain: Domain, state: str, *, algorithm: str = "rsa", selector: str = "",
           **fields: object) -> DkimKey:
    public = rsa_public() if algorithm == "rsa" else ed_public()
    return DkimKey.objects.create(domain=domain, state=state, algorithm=algorithm,
                                  selector=selector or f"k{DkimKey.objects.count()}",
                                  bits=2048 if algorithm == "rsa" else 256,
                                  public_key=public, **fields)


def audit_actions() -> list[str]:
    return list(AuditEntry.objects.order_by("pk").values_list("action", flat=True))


# ---------------------------------------------------------------- generating


def test_generating_without_a_helper_is_refused(domain):
    with pytest.raises(ValidationError, match="no root helper"):
        services.generate(actor="t", domain=domain)
    assert not DkimKey.objects.exists()


def test_generating_makes_a_pending_rsa_2048_key_under_a_dated_selector(domain, helper):
    key = services.generate(actor="t", domain=domain)
    today = timezone.localdate()
    assert (key.selector, key.algorithm, key.bits, key.state, key.public_key, key.external) \
        == (f"s{today:%Y%m%d}a", "rsa", 2048, "pending", "", False)
    again = services.generate(actor="t", domain=domain, bits=4096)
    assert (again.selector, again.bits) == (f"s{today:%Y%m%d}b", 4096)
    assert audit_actions()[-2:] == ["dkim.generate", "dkim.generate"]


@pytest.mark.parametrize("bits", [1024, 512, 2047, 8192])
def test_rsa_sizes_outside_the_policy_are_refused(domain, helper, bits):
    with pytest.raises(ValidationError, match=f"{bits} bits is refused"):
        services.generate(actor="t", domain=domain, bits=bits)
    assert not DkimKey.objects.exists()


def test_ed25519_is_refused_alone_and_allowed_beside_rsa(domain, helper):
    with pytest.raises(ValidationError, match="only signs beside an RSA one"):
        services.generate(actor="t", domain=domain, algorithm="ed25519")
    services.generate(actor="t", domain=domain)
    key = services.generate(actor="t", domain=domain, algorithm="ed25519")
    assert (key.algorithm, key.bits) == ("ed25519", 256)


def test_a_retiring_rsa_key_does_not_allow_ed25519(domain, helper):
    key_in(domain, State.RETIRING)
    with pytest.raises(ValidationError, match="no RSA key that is pending, published or active"):
        services.generate(actor="t", domain=domain, algorithm="ed25519")


def test_a_selector_is_never_reused_even_after_a_key_is_gone(domain, helper):
    today = timezone.localdate()
    key_in(domain, State.GONE, selector=f"s{today:%Y%m%d}a")
    assert services.generate(actor="t", domain=domain).selector == f"s{today:%Y%m%d}b"


def test_the_public_key_is_stored_once_and_must_match_the_row(domain, helper):
    key = services.generate(actor="t", domain=domain)
    with pytest.raises(ValidationError, match="made a rsa key of 3072 bits"):
        services.store_public_key(actor="t", key=key, public_key=rsa_public(3072))
    value = rsa_public()
    services.store_public_key(actor="t", key=key, public_key=value)
    services.store_public_key(actor="t", key=key, public_key=value)  # a rerun: no change
    key.refresh_from_db()
    assert key.public_key == value
    assert audit_actions().count("dkim.generated") == 1
    with pytest.raises(ValidationError, match="already has its public key"):
        services.store_public_key(actor="t", key=key, public_key=rsa_public())


def test_no_audit_row_holds_a_private_key(domain, helper):
    key = services.generate(actor="t", domain=domain)
    services.store_public_key(actor="t", key=key, public_key=rsa_public())
    for row in AuditEntry.objects.all():
        assert "PRIVATE" not in json.dumps([row.before, row.after])


# ---------------------------------------------------------------- publishing


def test_a_pending_key_is_published_once_seen_for_its_ttl(domain):
    key = key_in(domain, State.PENDING)
    start = timezone.now()
    seen = Observation("match", "", 300)
    key = services.record_observation(actor="t", key=key, seen=seen, now=start)
    assert (key.state, key.published_seen_at, key.ttl_seen) == ("pending", start, 300)
    key = services.record_observation(actor="t", key=key, seen=seen,
                                      now=start + datetime.timedelta(seconds=299))
    assert key.state == "pending"
    later = start + datetime.timedelta(seconds=300)
    key = services.record_observation(actor="t", key=key, seen=seen, now=later)
    assert (key.state, key.published, key.problem) == ("published", later, "")
    assert audit_actions() == ["domain.create", "dkim.seen", "dkim.published"]


def test_a_wrong_record_keeps_the_key_pending_with_the_reason(domain):
    key = key_in(domain, State.PENDING)
    start = timezone.now()
    services.record_observation(actor="t", key=key, seen=Observation("match", "", 60), now=start)
    wrong = Observation("mismatch",
                        "Wrong record at k0._domainkey.a.example: ns shows another key.")
    key = services.record_observation(actor="t", key=key, seen=wrong,
                                      now=start + datetime.timedelta(hours=1))
    assert (key.state, key.published_seen_at) == ("pending", None)
    assert key.problem.startswith("Wrong record at k0._domainkey.a.example")
    # The clock starts again when the right record is back.
    key = services.record_observation(actor="t", key=key, seen=Observation("match", "", 60),
                                      now=start + datetime.timedelta(hours=2))
    assert key.state == "pending"


# ---------------------------------------------------------------- signing, retiring, revoking


def test_activating_retires_the_previous_key_of_the_same_algorithm(domain):
    old = key_in(domain, State.ACTIVE, activated=timezone.now())
    ed = key_in(domain, State.ACTIVE, algorithm="ed25519")
    new = key_in(domain, State.PUBLISHED)
    services.activate(actor="t", key=new)
    old.refresh_from_db()
    ed.refresh_from_db()
    new.refresh_from_db()
    assert (new.state, old.state, ed.state) == ("active", "retiring", "active")
    assert old.retiring_since == new.activated
    assert audit_actions()[-2:] == ["dkim.retire", "dkim.activate"]


@pytest.mark.parametrize("state", [State.PENDING, State.ACTIVE, State.RETIRING, State.REVOKED,
                                   State.GONE])
def test_only_a_published_key_is_activated(domain, state):
    key = key_in(domain, state)
    with pytest.raises(ValidationError, match="only a key that is published can be activated"):
        services.activate(actor="t", key=key)


def test_ed25519_is_not_activated_without_an_active_rsa_key(domain):
    key = key_in(domain, State.PUBLISHED, algorithm="ed25519")
    with pytest.raises(ValidationError, match="no active RSA key"):
        services.activate(actor="t", key=key)


def test_the_last_rsa_key_is_not_retired_while_ed25519_signs(domain):
    rsa_key = key_in(domain, State.ACTIVE)
    key_in(domain, State.ACTIVE, algorithm="ed25519")
    with pytest.raises(ValidationError, match="retire the ed25519 key first"):
        services.retire(actor="t", key=rsa_key)


def test_revoking_waits_for_the_grace_period(domain, settings):
    settings.MAILADMIN_DKIM_RETIRE_GRACE_DAYS = 7
    since = timezone.now() - datetime.timedelta(days=6)
    key = key_in(domain, State.RETIRING, retiring_since=since)
    with pytest.raises(ValidationError, match="may still be verified until"):
        services.revoke(actor="t", key=key)
    key = services.revoke(actor="t", key=key, now=since + datetime.timedelta(days=7))
    assert key.state == "revoked"
    assert audit_actions()[-1] == "dkim.revoke"


def test_an_active_key_is_not_revoked(domain):
    key = key_in(domain, State.ACTIVE)
    with pytest.raises(ValidationError, match="pending or published or retiring"):
        services.revoke(actor="t", key=key)


def test_a_revoked_key_goes_only_once_dns_shows_p_empty(domain):
    key = key_in(domain, State.REVOKED, external=True)
    assert not services.request_removal(actor="t", key=key,
                                        seen=Observation("match", "still the old key"))
    key.refresh_from_db()
    assert key.state == "revoked"
    assert key.problem.startswith("Publish the revoked form")
    assert services.request_removal(actor="t", key=key, seen=Observation("revoked"))
    key.refresh_from_db()
    assert (key.state, key.removed is not None) == ("gone", True)


# ---------------------------------------------------------------- keys made elsewhere


def test_set_key_marks_the_key_external_and_keeps_generated_keys(domain, helper):
    key = services.set_key(actor="t", domain=domain, selector="mail", public_key=rsa_public())
    assert (key.external, key.state, key.bits) == (True, "active", 2048)
    generated = key_in(domain, State.PUBLISHED)
    services.activate(actor="t", key=generated)
    with pytest.raises(ValidationError, match="generated on the mail host"):
        services.set_key(actor="t", domain=domain, selector="other", public_key=rsa_public())
    with pytest.raises(ValidationError, match="retired and revoked, not removed"):
        services.remove_key(actor="t", domain=domain)


def test_a_live_keys_selector_is_not_set_again(domain):
    key_in(domain, State.RETIRING, selector="mail")
    with pytest.raises(ValidationError, match="another key's"):
        services.set_key(actor="t", domain=domain, selector="mail", public_key=rsa_public())


# ---------------------------------------------------------------- the health check's rows


def lookup_from(answers: dict[str, str]):
    def lookup(name, rdtype):
        if name in answers:
            return Answer(name, rdtype, "ok", (answers[name],))
        return Answer(name, rdtype, "nxdomain")
    return lookup


@pytest.mark.parametrize(("state", "verdict", "reason"), [
    ("pending", Verdict.WARNING, "A new key, not published yet: publish this record"),
    ("published", Verdict.ERROR, "No DKIM record"),
    ("active", Verdict.ERROR, "No DKIM record"),
    ("retiring", Verdict.ERROR, "A retiring key's record went early"),
])
def test_a_missing_record_means_what_the_state_says(state, verdict, reason):
    public = ed_public()
    target = Target(name="a.example", dkim_keys=(DkimExpected("s1", public, "ed25519", state),))
    [finding] = checks.check_dkim(target, Identity(hosts=("mx.example.net",)), lookup_from({}))
    assert finding.verdict == verdict
    assert reason in finding.reason
    assert finding.record == records.txt_record("s1", "a.example", "ed25519", public)


def test_a_published_pending_key_is_ok():
    public = ed_public()
    target = Target(name="a.example", dkim_keys=(DkimExpected("s1", public, "ed25519", "pending"),))
    lookup = lookup_from({"s1._domainkey.a.example": f"v=DKIM1; k=ed25519; p={public}"})
    [finding] = checks.check_dkim(target, Identity(hosts=("mx.example.net",)), lookup)
    assert finding.verdict == Verdict.OK


def test_dnscheck_expects_pending_keys_once_made_and_never_revoked_ones(domain, helper):
    services.generate(actor="t", domain=domain)  # not made yet: nothing to look for
    made = key_in(domain, State.PENDING)
    key_in(domain, State.REVOKED)
    key_in(domain, State.GONE)
    retiring = key_in(domain, State.RETIRING)
    expected = selectors.expected_keys([domain.pk])[domain.pk]
    assert sorted(k.pk for k in expected) == sorted([made.pk, retiring.pk])


# ---------------------------------------------------------------- the page and the command


def test_the_page_shows_each_key_with_its_state_and_records(world, helper):
    pending = services.generate(actor="t", domain=world.a)  # not made yet
    revoked = key_in(world.a, State.REVOKED, selector="old")
    active = key_in(world.a, State.ACTIVE, selector="now")
    page = html.unescape(world.client_for("admin_a").get(
        reverse("dkim:key", args=["a.example"])).content.decode())
    assert f"{pending.selector}</code> · pending" in page
    assert "2048 bits (being made on the mail host)" in page
    assert records.txt_record("now", "a.example", "rsa", active.public_key) in page
    assert "<code>now._domainkey</code>" in page
    assert records.revoked_record("old", "a.example", "rsa") in page
    assert revoked.public_key not in page  # a revoked key's old record is not offered again
    assert reverse("dkim:generate", args=["a.example"]) in page


def test_the_command_refuses_to_generate_without_a_helper(domain):
    with pytest.raises(CommandError, match="no root helper"):
        call_command("dkim", "generate", "a.example")
    with pytest.raises(CommandError, match="1024 bits is refused"):
        call_command("dkim", "generate", "a.example", "--bits", "1024")


def test_the_command_moves_keys_and_says_why_not(domain):
    key_in(domain, State.PUBLISHED, selector="next")
    out = io.StringIO()
    call_command("dkim", "activate", "a.example", "next", stdout=out)
    assert out.getvalue().strip() == "next._domainkey.a.example is active"
    with pytest.raises(CommandError, match="may still be verified until"):
        call_command("dkim", "retire", "a.example", "next")
        call_command("dkim", "revoke", "a.example", "next")
    with pytest.raises(CommandError, match="has no DKIM key 'nope'"):
        call_command("dkim", "activate", "a.example", "nope")
