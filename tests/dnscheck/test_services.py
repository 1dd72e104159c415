"""The writes of dnscheck: check runs (queue, claim, store, fail, schedule, prune), the
targets the checks get from the database, DKIM keys and the report bookkeeping.

No broker in unit tests: tasks run inline when the transaction commits. DNS is a
closed loopback port (tests/conftest.py), so real runs end with `unknown` verdicts.
"""

from __future__ import annotations

import base64
import functools
from datetime import UTC, datetime, timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core import jobs
from core.models import AuditEntry
from dkim import services as dkim_services
from dkim.models import DkimKey
from dnscheck import checks, services, tasks
from dnscheck.findings import DkimExpected, Finding
from dnscheck.models import CheckResult, CheckRun, HealthReport, Verdict
from domains import services as domain_services
from domains.models import Domain
from tests.dnscheck import ERROR, OK, UNKNOWN, WARNING, make_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dead_dns")]
SETUP = "setup"


@pytest.fixture
def domain() -> Domain:
    return domain_services.create_domain(actor=SETUP, name="a.example")


@pytest.fixture
def canned(monkeypatch):
    """The checks, replaced by fixed findings: these tests are about runs, not DNS."""
    calls: list[str] = []

    def check_domain(target, identity, resolver, budget=None):
        calls.append(target.name)
        return [Finding("mx", "", OK, "fine"),
                Finding("spf", "", WARNING, "?all", record='x. IN TXT "v=spf1 -all"'),
                Finding("required-address", "postmaster", ERROR, "missing")]

    monkeypatch.setattr(checks, "check_domain", check_domain)
    return calls


@functools.cache
def rsa_base64(bits: int = 2048) -> str:
    der = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key() \
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def audit(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("pk"))


# ---------------------------------------------------------------- request_check


def test_a_requested_check_runs_inline_and_stores_its_results(
        domain, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.request_check(actor="alice@a.example", domain=domain)
        assert run.state == CheckRun.State.QUEUED

    run.refresh_from_db()
    assert run.state == CheckRun.State.DONE
    assert run.requested_by == "alice@a.example"
    assert run.started is not None and run.finished is not None
    assert run.started <= run.finished
    results = list(run.results.all())
    assert {r.check_name for r in results} >= {"mx", "spf", "dmarc", "required-address"}
    # Dead DNS: what depends on it is unknown; nothing receives postmaster@: an error.
    assert run.worst == max(r.verdict for r in results) == ERROR
    assert {r.verdict for r in results if r.check_name == "mx"} == {UNKNOWN}
    assert all(r.checked_at == run.finished for r in results)


def test_a_second_request_returns_the_open_run(domain, django_capture_on_commit_callbacks,
                                               canned):
    with django_capture_on_commit_callbacks(execute=True):
        first = services.request_check(actor="alice@a.example", domain=domain)
        second = services.request_check(actor="bert@a.example", domain=domain)
        assert second.pk == first.pk
        assert CheckRun.objects.count() == 1

    # Both messages ran; the second found nothing left to claim.
    assert canned == ["a.example"]
    assert CheckRun.objects.get().state == CheckRun.State.DONE
    assert CheckResult.objects.count() == 3
    assert [e.actor for e in audit("dnscheck.request")] == ["alice@a.example"]


def test_a_request_while_a_run_is_running_returns_it(domain, canned):
    running = make_run(domain, state=CheckRun.State.RUNNING, minutes_ago=2)

    assert services.request_check(actor="alice@a.example", domain=domain).pk == running.pk
    assert CheckRun.objects.count() == 1
    assert canned == []


def test_after_a_run_is_done_a_request_starts_a_new_one(
        domain, django_capture_on_commit_callbacks, canned):
    with django_capture_on_commit_callbacks(execute=True):
        first = services.request_check(actor="alice@a.example", domain=domain)
    with django_capture_on_commit_callbacks(execute=True):
        second = services.request_check(actor="alice@a.example", domain=domain)

    assert second.pk != first.pk
    assert canned == ["a.example", "a.example"]
    assert len(audit("dnscheck.request")) == 2


def test_a_user_request_is_audited(domain, django_capture_on_commit_callbacks, canned):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.request_check(actor="alice@a.example", domain=domain)

    [entry] = audit("dnscheck.request")
    assert (entry.actor, entry.domain, entry.after) == ("alice@a.example", "a.example",
                                                        {"run": run.pk})
    assert (entry.object_type, entry.object_id) == ("domain", domain.pk)


@pytest.mark.parametrize("actor", [services.BEAT, services.COMMAND])
def test_system_requests_are_not_audited(domain, django_capture_on_commit_callbacks, canned,
                                         actor):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.request_check(actor=actor, domain=domain)

    run.refresh_from_db()
    assert run.state == CheckRun.State.DONE
    assert run.requested_by == str(actor)
    assert audit("dnscheck.request") == []


def test_the_task_is_enqueued_only_after_commit(domain, django_capture_on_commit_callbacks,
                                                canned):
    with django_capture_on_commit_callbacks() as callbacks:
        run = services.request_check(actor="alice@a.example", domain=domain)
    assert canned == []
    assert len(callbacks) == 1

    callbacks[0]()
    run.refresh_from_db()
    assert run.state == CheckRun.State.DONE


def test_a_stale_running_run_is_closed_and_a_new_one_starts(
        domain, django_capture_on_commit_callbacks, canned):
    stale = make_run(domain, state=CheckRun.State.RUNNING,
                     minutes_ago=jobs.stale_after(CheckRun).total_seconds() / 60 + 1)

    with django_capture_on_commit_callbacks(execute=True):
        run = services.request_check(actor="alice@a.example", domain=domain)

    assert run.pk != stale.pk
    stale.refresh_from_db()
    assert stale.state == CheckRun.State.FAILED
    assert stale.finished is not None
    assert "worker stopped" in stale.error
    run.refresh_from_db()
    assert run.state == CheckRun.State.DONE
    assert canned == ["a.example"]


def test_runs_of_other_domains_do_not_count(domain, django_capture_on_commit_callbacks,
                                            canned):
    other = domain_services.create_domain(actor=SETUP, name="b.example")
    theirs = make_run(other, state=CheckRun.State.QUEUED)

    with django_capture_on_commit_callbacks(execute=True):
        ours = services.request_check(actor="alice@a.example", domain=domain)

    assert ours.pk != theirs.pk
    assert canned == ["a.example"]


# ---------------------------------------------------------------- execute_run


def test_executing_a_done_run_again_does_nothing(domain, canned):
    run = make_run(domain, state=CheckRun.State.QUEUED)
    assert services.execute_run(run.pk).state == CheckRun.State.DONE
    before = list(CheckResult.objects.values_list("pk", flat=True))

    assert services.execute_run(run.pk) is None
    assert tasks.run_check(run.pk) is None  # a redelivered task
    assert list(CheckResult.objects.values_list("pk", flat=True)) == before
    assert canned == ["a.example"]


def test_executing_a_run_another_worker_has_does_nothing(domain, canned):
    running = make_run(domain, state=CheckRun.State.RUNNING, minutes_ago=1)
    assert services.execute_run(running.pk) is None
    assert services.execute_run(running.pk + 1000) is None
    assert canned == []


def test_a_stale_running_run_can_be_claimed_again(domain, canned):
    stale = make_run(domain, state=CheckRun.State.RUNNING, minutes_ago=30)
    assert services.execute_run(stale.pk).state == CheckRun.State.DONE


def test_execute_run_stores_findings_and_the_worst_verdict(domain, canned):
    run = make_run(domain, state=CheckRun.State.QUEUED)

    done = services.execute_run(run.pk)

    assert done.state == CheckRun.State.DONE
    assert done.worst == ERROR
    assert done.error == ""
    rows = {(r.check_name, r.subject): r for r in done.results.all()}
    assert set(rows) == {("mx", ""), ("spf", ""), ("required-address", "postmaster")}
    assert rows[("spf", "")].record == 'x. IN TXT "v=spf1 -all"'
    assert rows[("spf", "")].verdict == WARNING


def test_a_run_without_findings_is_unknown(domain, monkeypatch):
    monkeypatch.setattr(checks, "check_domain", lambda *a, **k: [])
    run = make_run(domain, state=CheckRun.State.QUEUED)
    assert services.execute_run(run.pk).worst == UNKNOWN


def test_checks_that_raise_fail_the_run_without_crashing(domain, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(checks, "check_domain", explode)
    run = make_run(domain, state=CheckRun.State.QUEUED)

    failed = services.execute_run(run.pk)

    assert failed.state == CheckRun.State.FAILED
    assert failed.error == "the checks failed: RuntimeError"
    assert failed.finished is not None
    assert failed.worst is None
    assert not failed.results.exists()
    assert "boom" in caplog.text


def test_a_run_cut_off_by_its_time_limit_is_failed_and_the_limit_goes_on(domain,
                                                                        monkeypatch):
    def too_slow(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(checks, "check_domain", too_slow)
    run = make_run(domain, state=CheckRun.State.QUEUED)

    with pytest.raises(SoftTimeLimitExceeded):
        services.execute_run(run.pk)

    run.refresh_from_db()
    assert run.state == CheckRun.State.FAILED
    assert run.error == "the run took longer than its time limit"


def test_a_failed_run_does_not_block_the_next_request(
        domain, monkeypatch, django_capture_on_commit_callbacks, canned):
    make_run(domain, state=CheckRun.State.FAILED, error="the checks failed: RuntimeError")
    with django_capture_on_commit_callbacks(execute=True):
        run = services.request_check(actor="alice@a.example", domain=domain)
    run.refresh_from_db()
    assert run.state == CheckRun.State.DONE


def test_check_domains_now_checks_each_domain_in_this_process(domain):
    other = domain_services.create_domain(actor=SETUP, name="b.example")

    runs = services.check_domains_now(actor=services.COMMAND, domains=[domain, other])

    assert [r.domain.name for r in runs] == ["a.example", "b.example"]
    assert all(r.state == CheckRun.State.DONE and r.results.exists() for r in runs)
    assert all(r.requested_by == str(services.COMMAND) for r in runs)


def test_check_domains_now_starts_each_batch_when_it_is_checked(domain, settings):
    """A long command must not see its runs closed as stale by a beat or a click
    meanwhile: each run starts with its batch and lasts one domain's budget."""
    settings.MAILADMIN_DNS_CONCURRENCY = 1
    other = domain_services.create_domain(actor=SETUP, name="b.example")

    first, second = services.check_domains_now(actor=services.COMMAND, domains=[domain, other])

    assert first.state == second.state == CheckRun.State.DONE
    assert second.started >= first.finished
    assert first.results.exists() and second.results.exists()


def test_check_domains_now_does_not_leave_runs_running_when_the_checks_raise(domain,
                                                                            monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(checks, "check_many", explode)
    with pytest.raises(RuntimeError):
        services.check_domains_now(actor=services.COMMAND, domains=[domain])
    assert not CheckRun.objects.filter(state=CheckRun.State.RUNNING).exists()


# ---------------------------------------------------------------- schedule_all


@pytest.fixture
def enqueued(monkeypatch):
    """The run_check messages, as (run id, countdown), instead of running them."""
    sent: list[tuple[int, float]] = []

    def apply_async(args, countdown=0):
        sent.append((args[0], countdown))

    monkeypatch.setattr(tasks.run_check, "apply_async", apply_async)
    return sent


def test_schedule_all_queues_every_active_domain_at_its_own_offset(
        settings, django_capture_on_commit_callbacks, enqueued):
    settings.MAILADMIN_DNSCHECK_SPREAD_MINUTES = 60
    active = [domain_services.create_domain(actor=SETUP, name=f"d{n}.example")
              for n in range(6)]
    domain_services.create_domain(actor=SETUP, name="off.example", active=False)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.schedule_all() == 6

    runs = {r.pk: r for r in CheckRun.objects.select_related("domain")}
    assert sorted(r.domain.name for r in runs.values()) == sorted(d.name for d in active)
    assert all(r.state == CheckRun.State.QUEUED and r.requested_by == str(services.BEAT)
               for r in runs.values())
    assert sorted(run_id for run_id, _ in enqueued) == sorted(runs)
    offsets = {runs[run_id].domain_id: countdown for run_id, countdown in enqueued}
    assert offsets == {d.pk: services.spread_offset(d.pk, 3600) for d in active}
    assert len(set(offsets.values())) == len(active)
    assert all(0 <= o < 3600 for o in offsets.values())
    assert audit("dnscheck.request") == []


def test_schedule_all_twice_does_not_make_a_second_run(django_capture_on_commit_callbacks,
                                                       enqueued):
    domain_services.create_domain(actor=SETUP, name="a.example")
    with django_capture_on_commit_callbacks(execute=True):
        services.schedule_all()
        services.schedule_all()
    assert CheckRun.objects.count() == 1


def test_the_beat_task_schedules_all(django_capture_on_commit_callbacks, enqueued):
    domain_services.create_domain(actor=SETUP, name="a.example")
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.check_all() == 1
    assert len(enqueued) == 1


def test_spread_offsets_are_fixed_distinct_and_inside_the_window():
    window = 3600.0
    offsets = [services.spread_offset(pk, window) for pk in range(1, 2001)]
    assert offsets == [services.spread_offset(pk, window) for pk in range(1, 2001)]
    assert all(0 <= o < window for o in offsets)
    assert len(set(offsets)) == len(offsets)
    # Spread over the whole window, not bunched: every tenth of it gets some.
    assert {int(o // (window / 10)) for o in offsets} == set(range(10))
    assert services.spread_offset(7, 0) == 0.0


# ---------------------------------------------------------------- prune_history


def aged(run: CheckRun, days: float) -> CheckRun:
    CheckRun.objects.filter(pk=run.pk).update(requested=timezone.now() - timedelta(days=days))
    return run


def test_prune_history_keeps_recent_latest_and_open_runs(settings):
    settings.MAILADMIN_DNSCHECK_RETENTION_DAYS = 90
    a = domain_services.create_domain(actor=SETUP, name="a.example")
    b = domain_services.create_domain(actor=SETUP, name="b.example")
    result = [("mx", "", OK)]
    # a.example: old runs and a recent one.
    a_old = aged(make_run(a, result), 100)
    a_old_failed = aged(make_run(a, state=CheckRun.State.FAILED), 95)
    a_recent = aged(make_run(a, result), 5)
    # b.example: its latest done run is old; a failed run after it; open runs.
    b_older = aged(make_run(b, result), 300)
    b_latest = aged(make_run(b, result), 200)
    b_failed = aged(make_run(b, state=CheckRun.State.FAILED), 150)
    b_queued = aged(make_run(b, state=CheckRun.State.QUEUED), 100)
    b_running = aged(make_run(b, state=CheckRun.State.RUNNING), 100)

    assert services.prune_history() == 4

    kept = set(CheckRun.objects.values_list("pk", flat=True))
    assert kept == {a_recent.pk, b_latest.pk, b_queued.pk, b_running.pk}
    assert set(CheckResult.objects.values_list("run_id", flat=True)) == {a_recent.pk,
                                                                         b_latest.pk}
    assert {a_old.pk, a_old_failed.pk, b_older.pk, b_failed.pk}.isdisjoint(kept)
    assert services.prune_history() == 0


def test_prune_history_follows_the_retention_setting(settings):
    a = domain_services.create_domain(actor=SETUP, name="a.example")
    old = aged(make_run(a), 20)
    aged(make_run(a), 1)

    settings.MAILADMIN_DNSCHECK_RETENTION_DAYS = 30
    assert services.prune_history() == 0
    settings.MAILADMIN_DNSCHECK_RETENTION_DAYS = 10
    assert services.prune_history() == 1
    assert not CheckRun.objects.filter(pk=old.pk).exists()


def test_prune_history_measures_from_the_given_time(settings):
    settings.MAILADMIN_DNSCHECK_RETENTION_DAYS = 90
    a = domain_services.create_domain(actor=SETUP, name="a.example")
    make_run(a)
    latest = make_run(a)
    assert services.prune_history(now=timezone.now() + timedelta(days=91)) == 1
    assert list(CheckRun.objects.values_list("pk", flat=True)) == [latest.pk]


def test_the_prune_task_prunes(settings):
    settings.MAILADMIN_DNSCHECK_RETENTION_DAYS = 1
    a = domain_services.create_domain(actor=SETUP, name="a.example")
    aged(make_run(a), 2)
    make_run(a)
    assert tasks.prune_history() == 1


# ---------------------------------------------------------------- targets_for


def test_targets_for_finds_required_addresses_and_dkim_keys():
    by_mailbox = domain_services.create_domain(actor=SETUP, name="mailbox.example")
    domain_services.create_mailbox(actor=SETUP, email="postmaster@mailbox.example",
                                   password="correct horse battery")
    domain_services.create_alias(actor=SETUP, source="abuse@mailbox.example",
                                 destinations="postmaster@mailbox.example", checked_domains=None)
    by_catchall = domain_services.create_domain(actor=SETUP, name="catchall.example")
    domain_services.create_alias(actor=SETUP, source="@catchall.example",
                                 destinations="someone@else.test", checked_domains=None)
    inactive = domain_services.create_domain(actor=SETUP, name="off.example")
    domain_services.create_mailbox(actor=SETUP, email="postmaster@off.example",
                                   password="correct horse battery", active=False)
    domain_services.create_alias(actor=SETUP, source="abuse@off.example",
                                 destinations="someone@else.test", active=False,
                                 checked_domains=None)
    domain_services.create_alias(actor=SETUP, source="@off.example",
                                 destinations="someone@else.test", active=False,
                                 checked_domains=None)
    mixed = domain_services.create_domain(actor=SETUP, name="mixed.example")
    domain_services.create_alias(actor=SETUP, source="postmaster@mixed.example",
                                 destinations="someone@else.test", active=False,
                                 checked_domains=None)
    domain_services.create_alias(actor=SETUP, source="@mixed.example",
                                 destinations="someone@else.test", checked_domains=None)
    dkim_services.set_key(actor=SETUP, domain=by_mailbox, selector="s1",
                          public_key=rsa_base64())
    bare = domain_services.create_domain(actor=SETUP, name="bare.example")

    targets = services.targets_for([by_mailbox, by_catchall, inactive, mixed, bare])

    assert [t.name for t in targets] == ["mailbox.example", "catchall.example", "off.example",
                                         "mixed.example", "bare.example"]
    assert [t.required for t in targets] == [
        {"postmaster": "mailbox", "abuse": "alias"},
        {"postmaster": "catch-all", "abuse": "catch-all"},
        {"postmaster": "", "abuse": ""},
        {"postmaster": "catch-all", "abuse": "catch-all"},
        {"postmaster": "", "abuse": ""},
    ]
    assert targets[0].dkim_keys == (DkimExpected("s1", rsa_base64(), "rsa"),)
    assert targets[4].dkim_keys == ()


def test_targets_for_does_not_count_other_domains_addresses():
    a = domain_services.create_domain(actor=SETUP, name="a.example")
    domain_services.create_domain(actor=SETUP, name="b.example")
    domain_services.create_alias(actor=SETUP, source="@b.example",
                                 destinations="someone@else.test", checked_domains=None)
    domain_services.create_alias(actor=SETUP, source="postmaster@b.example",
                                 destinations="someone@else.test", checked_domains=None)
    [target] = services.targets_for([a])
    assert target.required == {"postmaster": "", "abuse": ""}


def test_targets_for_asks_a_fixed_number_of_queries():
    domains = [domain_services.create_domain(actor=SETUP, name=f"d{n}.example")
               for n in range(12)]
    with CaptureQueriesContext(connection) as few:
        services.targets_for(domains[:2])
    with CaptureQueriesContext(connection) as many:
        services.targets_for(domains)
    assert len(many) == len(few)


# ---------------------------------------------------------------- DKIM keys


def test_set_dkim_key_stores_and_audits(domain):
    key = dkim_services.set_key(actor="alice@a.example", domain=domain, selector=" Mail2030 ",
                                public_key=f"v=DKIM1; k=rsa; p={rsa_base64()}")

    assert (key.selector, key.public_key, key.algorithm) == ("mail2030", rsa_base64(), "rsa")
    assert DkimKey.objects.get(domain=domain) == key
    [entry] = audit("dkim.set")
    assert (entry.actor, entry.domain, entry.before) == ("alice@a.example", "a.example", None)
    assert entry.after["selector"] == "mail2030"
    assert entry.after["public_key"] == rsa_base64()
    assert entry.object_repr == "mail2030._domainkey.a.example"


def test_setting_a_key_again_replaces_it(domain):
    dkim_services.set_key(actor="t", domain=domain, selector="old", public_key=rsa_base64())
    ed = base64.b64encode(ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()

    key = dkim_services.set_key(actor="t", domain=domain, selector="new",
                                public_key=f"v=DKIM1; k=ed25519; p={ed}")

    assert DkimKey.objects.count() == 1
    assert (key.selector, key.public_key, key.algorithm) == ("new", ed, "ed25519")
    _, second = audit("dkim.set")
    assert second.before["selector"] == "old"
    assert second.after["selector"] == "new"
    assert second.after["algorithm"] == "ed25519"


def test_set_dkim_key_accepts_a_pem_key(domain):
    der = base64.b64decode(rsa_base64())
    pem = ("-----BEGIN PUBLIC KEY-----\n"
           + "\n".join(base64.b64encode(der).decode()[i:i + 64] for i in range(0, 400, 64))
           + "\n-----END PUBLIC KEY-----\n")
    key = dkim_services.set_key(actor="t", domain=domain, selector="s", public_key=pem)
    assert key.public_key == rsa_base64()


@pytest.mark.parametrize("selector", ["", "bad selector", "-mail", "mail-", "a..b",
                                      "x" * 64, "mail;p=x", "ma\u00efl"])
def test_set_dkim_key_refuses_a_bad_selector(domain, selector):
    with pytest.raises(ValidationError) as refused:
        dkim_services.set_key(actor="t", domain=domain, selector=selector,
                              public_key=rsa_base64())
    assert "not a valid DKIM selector" in " ".join(refused.value.messages)
    assert not DkimKey.objects.exists()
    assert audit("dkim.set") == []


def test_set_dkim_key_refuses_a_selector_longer_than_its_column(domain):
    selector = "a" * 40 + "." + "b" * 40
    with pytest.raises(ValidationError):
        dkim_services.set_key(actor="t", domain=domain, selector=selector,
                              public_key=rsa_base64())


@pytest.mark.parametrize("public_key", ["", "not a key", "v=DKIM1; k=rsa; p=",
                                        "v=DKIM1; p=AAAA; p=BBBB", "AAAA",
                                        f"v=DKIM1; k=ed25519; p={'QUFB' * 8}"])
def test_set_dkim_key_refuses_a_bad_key_in_one_line(domain, public_key):
    with pytest.raises(ValidationError) as refused:
        dkim_services.set_key(actor="t", domain=domain, selector="mail", public_key=public_key)
    [message] = refused.value.messages
    assert message.startswith("That DKIM key cannot be used: ")
    assert "\n" not in message
    assert not DkimKey.objects.exists()
    assert audit("dkim.set") == []


def test_a_bad_key_leaves_the_old_one(domain):
    dkim_services.set_key(actor="t", domain=domain, selector="mail", public_key=rsa_base64())
    with pytest.raises(ValidationError):
        dkim_services.set_key(actor="t", domain=domain, selector="other", public_key="garbage")
    assert DkimKey.objects.get().selector == "mail"


def test_remove_dkim_key_deletes_and_audits(domain):
    dkim_services.set_key(actor="t", domain=domain, selector="mail", public_key=rsa_base64())

    dkim_services.remove_key(actor="alice@a.example", domain=domain)

    assert not DkimKey.objects.exists()
    [entry] = audit("dkim.remove")
    assert (entry.actor, entry.domain, entry.after) == ("alice@a.example", "a.example", None)
    assert entry.before["selector"] == "mail"


def test_removing_a_key_that_is_not_there_is_refused(domain):
    with pytest.raises(ValidationError, match=r"a\.example has no DKIM key set"):
        dkim_services.remove_key(actor="t", domain=domain)
    assert audit("dkim.remove") == []


def test_the_key_reaches_the_checks(domain, django_capture_on_commit_callbacks, monkeypatch):
    seen = []
    monkeypatch.setattr(checks, "check_domain",
                        lambda target, *a, **k: seen.append(target) or [])
    dkim_services.set_key(actor="t", domain=domain, selector="mail", public_key=rsa_base64())
    with django_capture_on_commit_callbacks(execute=True):
        services.request_check(actor="t", domain=domain)
    [target] = seen
    [key] = target.dkim_keys
    assert (key.selector, key.public_key) == ("mail", rsa_base64())


# ---------------------------------------------------------------- record_report


def test_record_report_remembers_a_sending():
    when = datetime(2030, 3, 1, 7, 0, tzinfo=UTC)

    row = services.record_report(sent_at=when, recipients=3, changes=2)

    assert HealthReport.objects.get() == row
    assert (row.sent_at, row.recipients, row.changes) == (when, 3, 2)
    services.record_report(sent_at=when + timedelta(days=1), recipients=1, changes=0)
    assert HealthReport.objects.latest().sent_at == when + timedelta(days=1)


def test_verdicts_are_ordered_by_badness():
    assert OK < UNKNOWN < WARNING < ERROR
    assert max([Verdict.WARNING, Verdict.OK, Verdict.UNKNOWN]) == Verdict.WARNING
