"""A deleted domain's DKIM keys: kept as history, out of the signing config, files removed.

The real helper's dkim-remove runs in test_keygen.py; here the host's tasks are
recorded, not run.
"""

from __future__ import annotations

import datetime
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from core.actor import BEAT
from core.models import AuditEntry
from dkim import keygen, rotation, selectors, services, tasks
from dkim.models import DkimKey
from domains import services as domain_services
from mailhost.models import MailHost
from tests.dkim.test_rotation import applied, key

pytestmark = pytest.mark.django_db
SECOND = datetime.timedelta(seconds=1)


@pytest.fixture
def helper(settings):
    settings.MAILADMIN_HELPER_COMMAND = ["/bin/false"]
    settings.MAILADMIN_RSPAMD_MILTER = "inet:127.0.0.1:11332"


@pytest.fixture
def domain():
    return domain_services.create_domain(actor="t", name="a.example")


@pytest.fixture
def sent():
    """Tasks queued on commit, by name, with their arguments and options."""
    calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []
    with mock.patch("core.jobs._send", lambda name, args, options, refused:
                    calls.append((name, args, options))):
        yield calls


def test_deleting_a_domain_keeps_its_keys_as_history_and_queues_apply_then_removal(
        helper, domain, sent, django_capture_on_commit_callbacks):
    active = key(domain, "active", days_ago=10)
    retiring = key(domain, "retiring", days_ago=3)
    external = key(domain, "active", algorithm="ed25519", external=True,
                   public_key="A" * 43 + "=")
    gone = key(domain, "gone", days_ago=400)
    with mock.patch("mailhost.apply.request_apply") as request, \
            django_capture_on_commit_callbacks(execute=True):
        domain_services.delete_domain(actor="t", domain=domain)
        request.assert_not_called()  # not before the commit
    request.assert_called_once_with(actor="t", check_only=False)
    rows = {k.pk: k for k in DkimKey.objects.all()}
    assert len(rows) == 4  # nothing lost
    assert {k.deleted_domain for k in rows.values()} == {"a.example"}
    assert {k.domain_id for k in rows.values()} == {None}
    assert [rows[k.pk].state for k in (active, retiring, external, gone)] == [
        "revoked", "revoked", "gone", "gone"]
    assert rows[active.pk].retiring_since is not None  # it stopped signing now
    assert str(rows[active.pk]) == f"{active.selector}._domainkey.a.example"
    # Only the files made here are removed, on the host's queue.
    assert sorted((n, a) for n, a, _ in sent) == sorted(
        [(services.REMOVE_FILE_TASK, (active.pk,)), (services.REMOVE_FILE_TASK, (retiring.pk,))])
    assert {o.get("queue") for _, _, o in sent} == {MailHost.current().queue}
    audit = AuditEntry.objects.filter(action="dkim.domain_deleted")
    assert audit.count() == 4 and {e.domain for e in audit} == {"a.example"}
    assert AuditEntry.objects.filter(action="domain.delete").count() == 1
    assert selectors.signing_keys("/keys") == {}


def test_a_deleted_domain_without_signing_keys_queues_no_apply(
        helper, domain, sent, django_capture_on_commit_callbacks):
    key(domain, "pending")
    with mock.patch("mailhost.apply.request_apply") as request, \
            django_capture_on_commit_callbacks(execute=True):
        domain_services.delete_domain(actor="t", domain=domain)
    request.assert_not_called()
    assert [n for n, _, _ in sent] == [services.REMOVE_FILE_TASK]


def test_the_file_goes_only_after_the_config_without_it_is_applied(helper, domain):
    applied(timezone.now() - SECOND)
    signing = key(domain, "active", days_ago=10)
    with mock.patch("mailhost.apply.request_apply"):
        domain_services.delete_domain(actor="t", domain=domain)
    with mock.patch("mailhost.privileged.run_helper", return_value="removed") as helper_run:
        keygen.remove_key_file(signing.pk)  # before the apply: waits
        helper_run.assert_not_called()
        signing.refresh_from_db()
        assert signing.state == "revoked"
        assert signing.problem.startswith("Waiting for the signing configuration")
        # The apply is lost: the tick asks again, and removes nothing meanwhile.
        with mock.patch.object(services, "request_signing_apply") as again, \
                mock.patch.object(services, "request_file_removal") as removal:
            rotation.advance(actor=BEAT)
        again.assert_called_once()
        removal.assert_not_called()
        applied(timezone.now() + SECOND)
        with mock.patch.object(services, "request_file_removal") as removal:
            steps = rotation.advance(actor=BEAT)
        removal.assert_called_once()
        assert f"{signing.owner}: removing the key file (its domain was deleted)" in steps
        keygen.remove_key_file(signing.pk)
        keygen.remove_key_file(signing.pk)  # a rerun: nothing more
    helper_run.assert_called_once_with("dkim-remove", "a.example", signing.selector)
    signing.refresh_from_db()
    assert signing.state == "gone" and signing.removed is not None
    gone = AuditEntry.objects.get(action="dkim.gone")
    assert (gone.domain, gone.domain_ref) == ("a.example", None)  # superadmins only


def test_a_deleted_domains_keys_are_not_looked_for_nor_moved(helper, domain):
    pending = key(domain, "pending")
    with mock.patch("mailhost.apply.request_apply"):
        domain_services.delete_domain(actor="t", domain=domain)
    assert not selectors.keys_to_check().exists()
    assert not selectors.keys_awaiting_generation(timezone.now() + SECOND * 3600).exists()
    pending.refresh_from_db()
    with pytest.raises(ValidationError, match="its domain was deleted"):
        services.revoke(actor=BEAT, key=pending)


def test_a_new_domain_of_the_same_name_never_reuses_a_deleted_ones_selector(helper, domain):
    today = timezone.localdate()
    old = DkimKey.objects.create(domain=domain, selector=f"s{today:%Y%m%d}a",
                                 state="active", public_key="x", activated=timezone.now())
    with mock.patch("mailhost.apply.request_apply"):
        domain_services.delete_domain(actor="t", domain=domain)
    again = domain_services.create_domain(actor="t", name="a.example")
    # Its file a.example.SELECTOR.key may still be on the host: dkim-pubkey would
    # read it back as the new key.
    assert services.next_selector(again, today) == f"s{today:%Y%m%d}b"
    assert old.selector == f"s{today:%Y%m%d}a"


def test_a_disabled_domain_keeps_signing(helper, domain):
    signing = key(domain, "active")
    domain_services.set_domain_active(actor="t", domain=domain, active=False)
    assert [k.selector for k in selectors.signing_keys("/k")["a.example"]] == [signing.selector]


def test_the_tick_is_the_only_scheduled_publish_check(helper, domain, settings):
    """dkim.rotate_all asks DNS once per run (no second task asks the same questions)."""
    key(domain, "pending")
    late = key(domain, "pending", days_ago=1, public_key="")
    schedule = [e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()
                if e["task"].startswith("dkim.")]
    assert schedule == ["dkim.rotate_all"]
    with mock.patch("dkim.publish.check_keys", return_value=[]) as check, \
            mock.patch.object(services, "request_generation") as generation:
        tasks.rotate_all()
    check.assert_called_once()
    generation.assert_called_once_with(late)
