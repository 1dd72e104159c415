"""manage.py apply_config: --check runs inline and prints what would change and the
checkers' output; refusals are one line (CommandError: exit status 1)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core.actor import Actor
from mailhost import apply
from mailhost.models import ConfigApply
from tests.mailhost.conftest import install

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    printed = io.StringIO()
    call_command("apply_config", *args, stdout=printed, stderr=io.StringIO())
    return printed.getvalue()


def test_check_prints_what_would_change_and_installs_nothing(live, checkers):
    checkers.results = [apply.CheckerResult("postconf", "postconf -c S -n", 0,
                                            "postconf: warning: a warning\n")]

    printed = run("--check")

    lines = printed.splitlines()
    assert lines[:3] == ["$ postconf -c S -n", "[exit 0]", "postconf: warning: a warning"]
    assert "would change: postfix/main.cf (added, " in printed
    assert lines[-1].endswith("file(s) would change; nothing installed")
    assert not (live / "postfix").exists()
    done = ConfigApply.objects.get()
    assert (done.requested_by, done.check_only, done.state) == ("cli:" + Actor.cli().name,
                                                                True, "done")
    # Inline in the command's process: the queue was not used.
    assert checkers.staged


def test_check_with_nothing_changed_says_so(live, checkers):
    install(live)

    printed = run("--check")

    assert printed.splitlines()[-1] == "nothing to change"
    assert "would change" not in printed


def test_a_changed_file_is_shown_with_its_line_counts(live, checkers):
    install(live)
    with (live / "postfix" / "master.cf").open("a") as master_cf:
        master_cf.write("# a local edit\n")

    printed = run("--check")

    assert "would change: postfix/master.cf (+0 -1)" in printed.splitlines()


def test_a_refusing_checker_prints_its_output_and_fails(live, checkers):
    checkers.results = [apply.CheckerResult("doveconf", "doveconf -c W -n", 89,
                                            "doveconf: Fatal: Unknown setting: x\n")]
    printed = io.StringIO()

    with pytest.raises(CommandError) as refused:
        call_command("apply_config", "--check", stdout=printed, stderr=io.StringIO())

    assert str(refused.value) == ("doveconf refused the staged configuration: "
                                  "doveconf: Fatal: Unknown setting: x")
    assert "[exit 89]" in printed.getvalue()


def test_a_check_while_another_apply_is_open_is_refused(live, checkers):
    apply.request_apply(actor=Actor.account("alice"), check_only=True, enqueue=False)

    with pytest.raises(CommandError, match="already queued or running"):
        run("--check")
    assert ConfigApply.objects.count() == 1
