"""apply_config, the part that needs no root: the host's queue, one apply at a time,
staging, the comparison with the live files, the checkers, and no secret kept.

Checkers are faked here (no process); test_apply_checkers.py runs the real ones.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from core import jobs
from core.actor import Actor
from core.models import AuditEntry
from mailhost import apply
from mailhost.models import ConfigApply, MailHost
from tests.conftest import change_host
from tests.mailhost.conftest import DAEMON_PASSWORD, install

pytestmark = pytest.mark.django_db

ALICE = Actor.account("alice")


def check(**options) -> ConfigApply:
    requested = apply.request_apply(actor=ALICE, check_only=True, enqueue=False, **options)
    ran = apply.run_apply(requested.pk)
    assert ran is not None
    return ran


def paths(done: ConfigApply) -> list[str]:
    return [c["path"] for c in done.changes]


# ---------------------------------------------------------------- the host's queue


@pytest.mark.parametrize("name, queue", [
    ("mail.example.org", "host.mail.example.org"),
    ("MX1.Example.ORG.", "host.mx1.example.org"),
])
def test_the_queue_is_named_after_the_host(live, name, queue):
    change_host(mail_hostname=name)
    assert MailHost.current().queue == queue


def test_a_request_is_sent_to_the_hosts_queue_after_the_commit(live, monkeypatch):
    change_host(mail_hostname="MX1.example.org")
    sent = []
    monkeypatch.setattr(jobs, "enqueue_on_commit",
                        lambda name, *args, refused, **options: sent.append((name, args, options)))

    requested = apply.request_apply(actor=ALICE, check_only=True)

    assert sent == [("mailhost.apply_config", (requested.pk,), {"queue": "host.mx1.example.org"})]
    assert requested.state == "queued"


def test_the_task_is_routed_to_the_queue_when_sent(live, monkeypatch,
                                                   django_capture_on_commit_callbacks):
    from mailhost import tasks

    routed = []
    monkeypatch.setattr(tasks.apply_config, "apply_async",
                        lambda args, **options: routed.append((args, options)))
    with django_capture_on_commit_callbacks(execute=True):
        requested = apply.request_apply(actor=ALICE, check_only=True)

    assert routed == [((requested.pk,), {"queue": "host.mail.example.org"})]


def test_without_a_broker_the_apply_runs_inline(live, checkers,
                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        requested = apply.request_apply(actor=ALICE, check_only=True)

    requested.refresh_from_db()
    assert (requested.state, requested.outcome) == ("done", "would_change")
    assert requested.started and requested.finished


# ---------------------------------------------------------------- one at a time


def test_a_second_request_is_refused_while_one_is_open(live, checkers):
    first = apply.request_apply(actor=ALICE, check_only=True, enqueue=False)

    with pytest.raises(ValidationError, match="already queued or running"):
        apply.request_apply(actor=ALICE, check_only=True, enqueue=False)
    jobs.claim(ConfigApply, first.pk)
    with pytest.raises(ValidationError, match="already queued or running"):
        apply.request_apply(actor=ALICE, check_only=False, enqueue=False)
    assert ConfigApply.objects.count() == 1

    jobs.finish(ConfigApply, first.pk)
    assert apply.request_apply(actor=ALICE, check_only=True, enqueue=False).pk != first.pk


def test_an_apply_whose_agent_is_gone_no_longer_blocks(live):
    first = apply.request_apply(actor=ALICE, check_only=True, enqueue=False)
    jobs.claim(ConfigApply, first.pk)
    long_ago = timezone.now() - jobs.stale_after(ConfigApply) - datetime.timedelta(seconds=1)
    ConfigApply.objects.filter(pk=first.pk).update(started=long_ago)

    second = apply.request_apply(actor=ALICE, check_only=True, enqueue=False)

    first.refresh_from_db()
    assert (first.state, first.outcome) == ("failed", "error")
    assert second.state == "queued"


def test_a_redelivered_task_does_nothing(live, checkers):
    done = check()
    assert apply.run_apply(done.pk) is None
    assert len(checkers.staged) == 1


# ---------------------------------------------------------------- what would change


def test_a_check_lists_every_file_against_an_empty_live_tree(live, checkers):
    done = check()

    assert (done.state, done.outcome, done.error) == ("done", "would_change", "")
    assert "postfix/main.cf" in paths(done)
    assert "dovecot/conf.d/90-mailadmin.conf" in paths(done)
    assert {c["status"] for c in done.changes} == {"added"}
    assert all(c["added"] > 0 and c["removed"] == 0 for c in done.changes)
    assert not (live / "postfix").exists()  # nothing installed


def test_nothing_changes_once_the_live_tree_is_equal(live, checkers):
    install(live)

    first, second = check(), check()

    for done in (first, second):
        assert (done.state, done.outcome, done.changes) == ("done", "nothing", [])


def test_a_changed_live_file_is_counted_in_lines(live, checkers):
    install(live)
    main_cf = live / "postfix" / "main.cf"
    lines = main_cf.read_text().splitlines()
    lines[0] = "# edited by hand"
    main_cf.write_text("\n".join([*lines, "extra = 1", ""]))

    done = check()

    assert done.outcome == "would_change"
    assert done.changes == [{"path": "postfix/main.cf", "status": "changed",
                             "added": 1, "removed": 2}]


def test_staging_is_private_and_removed_afterwards(live, checkers):
    check()

    [(staged, mode, files)] = checkers.staged
    assert mode == 0o700
    assert staged.parent == Path(live.parent / "staging")
    assert "postfix/main.cf" in files and "dovecot/dovecot-sql.conf.ext" in files
    assert not staged.exists()
    assert (staged.parent.stat().st_mode & 0o777) == 0o700


def test_a_configuration_that_cannot_be_rendered_fails_in_one_line(live, checkers, settings):
    settings.MAILADMIN_TLS_CERT = str(live / "missing.pem")

    done = check()

    assert (done.state, done.outcome) == ("failed", "error")
    assert done.error.startswith("cannot render: MAILADMIN_TLS_CERT=")
    assert "\n" not in done.error
    assert checkers.staged == []


def test_a_refusing_checker_fails_the_apply_with_its_message(live, checkers):
    checkers.results = [
        apply.CheckerResult("postconf", "postconf -c S -n", 1,
                            "postconf: fatal: S/main.cf, line 3: missing '=' after attribute "
                            "name: \"bad\"\n")]

    done = check()

    assert (done.state, done.outcome) == ("failed", "check_failed")
    assert done.error == ("postconf refused the staged configuration: postconf: fatal: "
                          "S/main.cf, line 3: missing '=' after attribute name: \"bad\"")
    assert "[exit 1]" in done.checker_output
    assert "postfix/main.cf" in paths(done)


# ---------------------------------------------------------------- audit, and no secret


def test_the_request_and_the_result_are_audited(live, checkers):
    done = check()

    rows = list(AuditEntry.objects.order_by("pk").values("actor", "action", "after"))
    assert [(r["actor"], r["action"]) for r in rows] == [
        ("alice", "mailhost.apply_request"),
        ("agent host.mail.example.org", "mailhost.apply_check")]
    assert rows[1]["after"]["requested_by"] == "alice"
    assert rows[1]["after"]["outcome"] == "would_change"
    assert rows[1]["after"]["files"] == paths(done)


def test_the_daemon_password_is_never_stored(live, checkers):
    # The rendered files hold it (sanity), and a checker may print it.
    install(live)
    sql = live / "dovecot" / "dovecot-sql.conf.ext"
    assert DAEMON_PASSWORD in sql.read_text()
    sql.write_text(sql.read_text().replace(DAEMON_PASSWORD, "old-password"))
    checkers.results = [apply.CheckerResult(
        "doveconf", "doveconf -c S -n", 89, f"doveconf: Fatal: password={DAEMON_PASSWORD} bad\n")]

    done = check()

    assert done.outcome == "check_failed" and "dovecot/dovecot-sql.conf.ext" in paths(done)
    stored = json.dumps([list(ConfigApply.objects.values()),
                         list(AuditEntry.objects.values())], default=str)
    assert DAEMON_PASSWORD not in stored
    assert apply.REDACTED in done.checker_output and apply.REDACTED in done.error
    assert "old-password" not in stored  # no content of the live files either
