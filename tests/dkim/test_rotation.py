"""Rotation: `services.rotate`, the rotation tick's steps and their reruns, the
signing config applied after a key starts or stops signing, stalled steps in the
DNS health, the page's button and interval and who may press them.

DNS is not asked here (the tick's publish check finds nothing on the closed
loopback resolver); tests/integration/test_dkim_signing.py runs it all on the
real daemons.
"""

from __future__ import annotations

import datetime
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from core.actor import BEAT
from core.models import AuditEntry
from core.resolver import Answer
from dkim import records, rotation, services
from dkim.models import DkimKey, DkimRotation
from dnscheck import checks
from dnscheck import services as dns_services
from dnscheck.findings import DkimExpected
from dnscheck.models import Verdict
from domains import services as domain_services
from mailhost.models import ConfigApply, MailHost
from tests.dkim.test_lifecycle import rsa_public

pytestmark = pytest.mark.django_db
State = DkimKey.State
DAY = datetime.timedelta(days=1)


@pytest.fixture
def helper(settings):
    settings.MAILADMIN_HELPER_COMMAND = ["/bin/false"]
    settings.MAILADMIN_RSPAMD_MILTER = "inet:127.0.0.1:11332"


@pytest.fixture
def domain():
    return domain_services.create_domain(actor="t", name="a.example")


def key(domain, state, *, algorithm="rsa", days_ago=0, **fields) -> DkimKey:
    when = timezone.now() - days_ago * DAY
    defaults = {"published": when, "activated": when if state in ("active", "retiring")
                else None, "retiring_since": when if state == "retiring" else None}
    defaults["public_key"] = rsa_public()
    defaults.update(fields)
    count = DkimKey.objects.filter(domain=domain).count()
    return DkimKey.objects.create(domain=domain, selector=f"k{count}", algorithm=algorithm,
                                  bits=2048 if algorithm == "rsa" else 256, state=state,
                                  created=when, **defaults)


def applied(at: datetime.datetime) -> ConfigApply:
    return ConfigApply.objects.create(host=MailHost.current(), check_only=False,
                                      state="done", started=at, finished=at,
                                      outcome=ConfigApply.Outcome.APPLIED)


@pytest.fixture
def no_generation(monkeypatch):
    """The host's task is not run here (test_keygen.py runs it with the real helper)."""
    monkeypatch.setattr(services, "request_generation", lambda key: None)


def test_rotate_adds_one_key_per_signing_algorithm_and_never_a_second(
        helper, domain, no_generation):
    key(domain, "active", days_ago=10)
    key(domain, "active", algorithm="ed25519", days_ago=10, public_key="A" * 43 + "=")
    made = services.rotate(actor=BEAT, domain=domain)
    assert sorted((k.algorithm, k.state, k.bits) for k in made) == [
        ("ed25519", "pending", 256), ("rsa", "pending", 2048)]
    with pytest.raises(ValidationError, match="already under way"):
        services.rotate(actor=BEAT, domain=domain)
    assert DkimKey.objects.filter(domain=domain, state="pending").count() == 2
    assert AuditEntry.objects.filter(action="dkim.rotate").count() == 2


def test_rotate_without_a_helper_is_refused(domain):
    with pytest.raises(ValidationError, match="no root helper"):
        services.rotate(actor=BEAT, domain=domain)


def test_activation_queues_one_apply_on_commit(helper, domain,
                                               django_capture_on_commit_callbacks):
    old = key(domain, "active", days_ago=10)
    new = key(domain, "published")
    with mock.patch("mailhost.apply.request_apply") as request, \
            django_capture_on_commit_callbacks(execute=True):
        services.activate(actor=BEAT, key=new)
        request.assert_not_called()  # not before the commit
    request.assert_called_once_with(actor=BEAT, check_only=False)
    old.refresh_from_db()
    assert old.state == "retiring"
    # An apply already queued or running: nothing raised, nothing else queued.
    with mock.patch("mailhost.apply.request_apply",
                    side_effect=ValidationError("already queued")), \
            django_capture_on_commit_callbacks(execute=True):
        services.retire(actor=BEAT, key=new)


def test_no_apply_without_a_milter(helper, settings, domain,
                                   django_capture_on_commit_callbacks):
    settings.MAILADMIN_RSPAMD_MILTER = ""
    new = key(domain, "published")
    with mock.patch("mailhost.apply.request_apply") as request, \
            django_capture_on_commit_callbacks(execute=True):
        services.activate(actor=BEAT, key=new)
    request.assert_not_called()


def test_the_tick_activates_a_published_key_and_retires_the_old_one(helper, domain,
                                                                    no_generation):
    old = key(domain, "active", days_ago=200)
    new = key(domain, "published")
    with mock.patch("mailhost.apply.request_apply"):
        steps = rotation.advance(actor=BEAT)
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.state, new.state) == ("retiring", "active")
    assert f"{new.owner}: active (applying the signing configuration)" in steps
    # Nothing is due: the new key signs since now, and nothing else is pending.
    assert not DkimKey.objects.filter(domain=domain, state="pending").exists()


def test_a_due_domain_gets_a_new_key_once(helper, domain, no_generation):
    applied(timezone.now())
    key(domain, "active", days_ago=183)
    rotation.advance(actor=BEAT)
    rotation.advance(actor=BEAT)
    assert DkimKey.objects.filter(domain=domain, state="pending").count() == 1


def test_rotation_off_or_not_yet_due_adds_nothing(helper, domain, no_generation):
    applied(timezone.now())
    key(domain, "active", days_ago=100)
    rotation.advance(actor=BEAT)
    assert not DkimKey.objects.filter(state="pending").exists()
    services.set_rotation(actor=BEAT, domain=domain, days=90)
    rotation.advance(actor=BEAT)
    assert DkimKey.objects.filter(state="pending").count() == 1
    DkimKey.objects.filter(state="pending").delete()
    services.set_rotation(actor=BEAT, domain=domain, days=0)
    rotation.advance(actor=BEAT)
    assert not DkimKey.objects.filter(state="pending").exists()
    with pytest.raises(ValidationError, match="14 days"):
        services.set_rotation(actor=BEAT, domain=domain, days=3)
    assert DkimRotation.objects.get(domain=domain).days == 0


def test_an_activation_whose_apply_was_lost_is_applied_by_the_next_tick(
        helper, domain, django_capture_on_commit_callbacks):
    """The agent died between activate and apply: the next tick asks again, once."""
    applied(timezone.now() - DAY)
    key(domain, "active")
    with mock.patch("mailhost.apply.request_apply") as request, \
            django_capture_on_commit_callbacks(execute=True):
        rotation.advance(actor=BEAT)
    request.assert_called_once()
    applied(timezone.now() + datetime.timedelta(seconds=1))
    with mock.patch("mailhost.apply.request_apply") as request, \
            django_capture_on_commit_callbacks(execute=True):
        rotation.advance(actor=BEAT)
    request.assert_not_called()


def test_a_retiring_key_is_revoked_after_grace_only_once_the_config_without_it_is_applied(
        helper, domain):
    key(domain, "active", days_ago=8)
    old = key(domain, "retiring", days_ago=8)
    young = key(domain, "retiring", days_ago=2)
    with mock.patch("mailhost.apply.request_apply"):
        rotation.advance(actor=BEAT)  # no apply since the switch
    old.refresh_from_db()
    assert old.state == "retiring"
    assert old.problem.startswith("Waiting for the signing configuration")
    applied(timezone.now())
    steps = rotation.advance(actor=BEAT)
    old.refresh_from_db()
    young.refresh_from_db()
    assert (old.state, young.state) == ("revoked", "retiring")
    assert any(s.startswith(f"{old.owner}: revoked") for s in steps)


def test_a_stalled_pending_key_is_an_error_with_the_record_to_publish(settings, domain):
    pending = key(domain, "pending", days_ago=4)
    [target] = dns_services.targets_for([domain])
    assert [k.stalled_days for k in target.dkim_keys] == [4]
    expected = target.dkim_keys[0]
    finding = checks._in_lifecycle(expected, checks._check_dkim_key(
        domain.name, expected, lambda name, rdtype: Answer(name, rdtype, "nxdomain")))
    assert finding.verdict == Verdict.ERROR
    assert finding.reason.startswith("The key rotation is stalled: this new key has waited "
                                     "4 days for its record")
    assert finding.record == records.txt_record(pending.selector, domain.name, "rsa",
                                                pending.public_key)
    fresh = DkimExpected(pending.selector, pending.public_key, state="pending")
    assert checks._in_lifecycle(fresh, finding).verdict == Verdict.WARNING
    settings.MAILADMIN_DKIM_STALL_DAYS = 5
    [target] = dns_services.targets_for([domain])
    assert [k.stalled_days for k in target.dkim_keys] == [0]


def test_the_rotate_button_and_who_may_press_it(helper, world, no_generation):
    key(world.a, "active", days_ago=10)
    url = reverse("dkim:rotate", args=["a.example"])
    # Another domain's admin: 404, and no key.
    assert world.client_for("admin_b").post(url).status_code == 404
    assert not DkimKey.objects.filter(state="pending").exists()
    response = world.client_for("admin_a").post(url, follow=True)
    assert response.status_code == 200
    [made] = DkimKey.objects.filter(state="pending")
    assert f"Rotation started: {made.owner}" in response.content.decode()
    again = world.client_for("admin_a").post(url, follow=True)
    assert "already under way" in again.content.decode()
    assert DkimKey.objects.filter(state="pending").count() == 1


def test_the_rotation_interval_form(helper, world):
    url = reverse("dkim:rotation", args=["a.example"])
    assert world.client_for("admin_b").post(url, {"days": "off"}).status_code == 404
    client = world.client_for("admin_a")
    assert client.post(url, {"days": "off"}).status_code == 302
    assert services.rotation_days(world.a) == 0
    assert client.post(url, {"days": "30"}).status_code == 302
    assert services.rotation_days(world.a) == 30
    bad = client.post(url, {"days": "3"})
    assert bad.status_code == 400 and "14 days" in bad.content.decode()
    assert client.post(url, {"days": "soon"}).status_code == 400
    assert "ten years" in client.post(url, {"days": "9999999999"}).content.decode()
    assert client.post(url, {"days": ""}).status_code == 302
    assert services.rotation_days(world.a) == 182
    assert list(AuditEntry.objects.filter(action="dkim.rotation").order_by("pk")
                .values_list("after", flat=True)) == [{"days": 0}, {"days": 30}, {"days": None}]


def test_the_command_rotates_and_sets_the_interval(helper, cli, domain, no_generation):
    key(domain, "active", days_ago=10)
    assert "pending" in cli("dkim", "rotate", "a.example")
    assert cli("dkim", "rotation", "a.example", "off") == "a.example: not rotated unattended\n"
    assert cli("dkim", "rotation", "a.example", "default") == (
        "a.example: rotated every 182 days\n")


def test_a_revoked_key_whose_revoked_form_is_not_published_stalls_in_the_health(domain):
    stalled = key(domain, "revoked", days_ago=20, revoked=timezone.now() - 4 * DAY)
    key(domain, "revoked", days_ago=20, revoked=timezone.now() - DAY)  # not yet stalled
    [target] = dns_services.targets_for([domain])
    assert [(k.selector, k.state, k.stalled_days) for k in target.dkim_keys] == [
        (stalled.selector, "revoked", 4)]
    owner = stalled.owner

    def shows(text: str):
        return lambda name, rdtype: Answer(name, rdtype, "ok", (text,))

    [finding] = checks.check_dkim(target, None, shows(f"v=DKIM1; k=rsa; p={stalled.public_key}"))
    assert finding.verdict == Verdict.WARNING
    assert finding.reason.startswith(f"The key rotation is stalled: {owner} was revoked 4 days")
    assert finding.record == records.revoked_record(stalled.selector, domain.name, "rsa")
    [finding] = checks.check_dkim(target, None,
                                  lambda name, rdtype: Answer(name, rdtype, "nxdomain"))
    assert finding.verdict == Verdict.WARNING
    [finding] = checks.check_dkim(target, None, shows("v=DKIM1; k=rsa; p="))
    assert finding.verdict == Verdict.OK
