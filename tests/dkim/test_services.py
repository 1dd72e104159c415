"""The DKIM key registry: many keys per domain; set and remove touch only the active one;
dnscheck expects every active and published key in DNS."""

from __future__ import annotations

import base64
import functools

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.core.exceptions import ValidationError

from core.resolver import Answer
from dkim import selectors, services
from dkim.models import DkimKey
from dnscheck import checks
from dnscheck import services as dnscheck_services
from dnscheck.findings import DkimExpected, Identity, Target
from dnscheck.models import Verdict
from domains import services as domain_services
from domains.models import Domain

pytestmark = pytest.mark.django_db


@functools.cache
def ed25519_key(n: int) -> str:
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@pytest.fixture
def domain() -> Domain:
    return domain_services.create_domain(actor="t", name="a.example")


def published(domain: Domain, selector: str, n: int,
              state: str = DkimKey.State.PUBLISHED) -> DkimKey:
    return DkimKey.objects.create(domain=domain, selector=selector, algorithm="ed25519",
                                  public_key=ed25519_key(n), state=state)


def test_an_old_and_a_new_key_coexist(domain):
    services.set_key(actor="t", domain=domain, selector="old",
                     public_key=f"v=DKIM1; k=ed25519; p={ed25519_key(1)}")
    published(domain, "new", 2)
    published(domain, "gone", 3, state=DkimKey.State.REVOKED)

    assert DkimKey.objects.filter(domain=domain).count() == 3
    assert selectors.active_key(domain).selector == "old"
    expected = selectors.expected_keys([domain.pk])[domain.pk]
    assert [(k.selector, k.state) for k in expected] == [("old", "active"), ("new", "published")]


def test_setting_replaces_only_the_active_key(domain):
    published(domain, "next", 2)
    services.set_key(actor="t", domain=domain, selector="one",
                     public_key=f"v=DKIM1; k=ed25519; p={ed25519_key(1)}")
    key = services.set_key(actor="t", domain=domain, selector="two",
                           public_key=f"v=DKIM1; k=ed25519; p={ed25519_key(3)}")

    assert (key.selector, key.state, key.public_key) == ("two", "active", ed25519_key(3))
    assert key.activated is not None
    assert sorted(DkimKey.objects.values_list("selector", "state")) == [
        ("next", "published"), ("two", "active")]


def test_a_selector_of_a_published_key_is_refused(domain):
    published(domain, "next", 2)
    with pytest.raises(ValidationError, match="another key's"):
        services.set_key(actor="t", domain=domain, selector="next",
                         public_key=f"v=DKIM1; k=ed25519; p={ed25519_key(1)}")
    assert not DkimKey.objects.filter(state=DkimKey.State.ACTIVE).exists()


def test_removing_leaves_published_keys(domain):
    published(domain, "next", 2)
    services.set_key(actor="t", domain=domain, selector="one",
                     public_key=f"v=DKIM1; k=ed25519; p={ed25519_key(1)}")
    services.remove_key(actor="t", domain=domain)
    assert list(DkimKey.objects.values_list("selector", flat=True)) == ["next"]
    with pytest.raises(ValidationError, match="has no DKIM key set"):
        services.remove_key(actor="t", domain=domain)


def test_dnscheck_expects_every_active_and_published_key(domain):
    services.set_key(actor="t", domain=domain, selector="one",
                     public_key=f"v=DKIM1; k=ed25519; p={ed25519_key(1)}")
    published(domain, "two", 2)
    published(domain, "old", 3, state=DkimKey.State.REVOKED)

    [target] = dnscheck_services.targets_for([domain])

    assert target.dkim_keys == (DkimExpected("one", ed25519_key(1), "ed25519", "active"),
                                DkimExpected("two", ed25519_key(2), "ed25519", "published"))


def test_the_dkim_check_judges_each_key_by_its_selector():
    target = Target(name="a.example",
                    dkim_keys=(DkimExpected("one", ed25519_key(1), "ed25519"),
                               DkimExpected("two", ed25519_key(2), "ed25519")))
    answers = {"one._domainkey.a.example": f"v=DKIM1; k=ed25519; p={ed25519_key(1)}"}

    def lookup(name, rdtype):
        if name in answers:
            return Answer(name, rdtype, "ok", (answers[name],))
        return Answer(name, rdtype, "nxdomain")

    findings = checks.check_dkim(target, Identity(hosts=("mx.example.net",)), lookup)

    assert [(f.subject, f.verdict) for f in findings] == [("one", Verdict.OK),
                                                          ("two", Verdict.ERROR)]
