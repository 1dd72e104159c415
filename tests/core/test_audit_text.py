"""core.audit_text: an audit row's change as lines a person reads (issue 12, item 6)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.audit_text import (
    ACTIONS,
    NAME_ONLY,
    action_choices,
    describe,
    human_size,
    value_text,
)

G, M = 1024**3, 1024**2
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("value", "text"), [
    (0, "unlimited"), (512, "512 B"), (1024, "1K"), (M, "1M"), (int(1.5 * M), "1.5M"),
    (2 * G, "2G"), (3 * G + 512 * M, "3.5G"), (1024**4, "1T"),
])
def test_sizes_read_as_people_write_them(value, text):
    assert human_size(value) == text


@pytest.mark.parametrize(("action", "before", "after", "lines"), [
    # domain.*
    ("domain.create", None, {"id": 1, "name": "a.example", "description": "", "active": True,
                             "max_mailboxes": 0, "max_quota": 10 * G, "default_quota": G},
     ["created: name 'a.example', enabled, mailbox limit unlimited, domain quota 10G, "
      "default mailbox quota 1G"]),
    ("domain.update", {"max_quota": 0, "description": "A"},
     {"max_quota": 2 * G, "description": "B"},
     ["domain quota unlimited -> 2G", "description 'A' -> 'B'"]),
    ("domain.update", {"max_mailboxes": 0, "max_aliases": 10_000},
     {"max_mailboxes": 50, "max_aliases": 0},
     ["mailbox limit unlimited -> 50", "alias limit 10,000 -> unlimited"]),
    ("domain.disable", {"active": True}, {"active": False}, ["disabled"]),
    ("domain.enable", {"active": False}, {"active": True}, ["enabled"]),
    ("domain.delete", {"name": "a.example"}, {"forced": True, "maildirs_kept": 3},
     ["deleted", "forced yes, Maildirs kept 3"]),
    ("domain.export", None, {"what": "mailboxes"}, ["what 'mailboxes'"]),
    ("domain.import_passwords_download", None, {"job": 7},
     ["generated passwords downloaded (import #7)"]),
    # mailbox.*
    ("mailbox.create", None, {"id": 3, "domain_id": 1, "email": "bob@a.example", "name": "Bob",
                              "quota": 2 * G, "active": True,
                              "password_changed": "2026-12-01T10:00:00+00:00"},
     ["created: email 'bob@a.example', name 'Bob', quota 2G, enabled"]),
    ("mailbox.import", None, {"email": "x@a.example", "quota": 0, "active": True},
     ["created: email 'x@a.example', quota unlimited, enabled"]),
    ("mailbox.update", {"quota": 2 * G, "name": "A"}, {"quota": 3 * G, "name": "B"},
     ["quota 2G -> 3G", "name 'A' -> 'B'"]),
    ("mailbox.update", {"active": True, "modified": "x"}, {"active": False, "modified": "y"},
     ["disabled"]),
    ("mailbox.disable", {"active": True}, {"active": False}, ["disabled"]),
    ("mailbox.enable", {"active": False}, {"active": True}, ["enabled"]),
    ("mailbox.password", None, {"password_changed": True}, ["password changed"]),
    ("mailbox.rehash", {"scheme": "SHA512-CRYPT"}, {"scheme": "ARGON2ID"},
     ["password hash scheme 'SHA512-CRYPT' -> 'ARGON2ID'"]),
    ("mailbox.first_sign_in", None, None, ["first sign-in"]),
    ("mailbox.delete", {"email": "bob@a.example"}, {"maildir_kept": "/var/vmail/a/bob"},
     ["deleted", "Maildir kept at '/var/vmail/a/bob'"]),
    ("mailbox.delete", {"email": "bob@a.example"}, None, ["deleted"]),
    ("mailbox.maildirs_reserved", None, {"addresses": ["a@x", "b@x"]}, ["addresses a@x, b@x"]),
    ("mailbox.maildir_removed", None, {"path": "/v/a", "deleted_at": "2026-01-02T03:04:05+00:00"},
     ["path '/v/a', deleted at 2026-01-02 03:04"]),
    ("mailbox.maildir_remove_failed", None, {"path": "/v/a", "error": "busy"},
     ["path '/v/a', error 'busy'"]),
    # alias.*
    ("alias.create", None, {"source": "team@a.example", "destinations": "a@x,b@y", "active": True},
     ["created: source 'team@a.example', destinations a@x, b@y, enabled"]),
    ("alias.update", {"destinations": "a@x"}, {"destinations": "a@x,b@y"},
     ["destinations a@x -> a@x, b@y"]),
    ("alias.update", {"active": True}, {"active": False}, ["disabled"]),
    ("alias.delete", {"source": "team@a.example"}, {"reason": "last destination a@x deleted"},
     ["deleted", "reason 'last destination a@x deleted'"]),
    ("alias.import", None, {"source": "s@a.example", "destinations": "a@x"},
     ["created: source 's@a.example', destinations a@x"]),
    # aliasdomain.*
    ("aliasdomain.create", None, {"name": "a.net", "target_id": 1, "active": True},
     ["created: name 'a.net', enabled"]),
    ("aliasdomain.disable", {"active": True}, {"active": False}, ["disabled"]),
    ("aliasdomain.delete", {"name": "a.net"}, None, ["deleted"]),
    # dkim.*
    ("dkim.generate", None, {"selector": "s1", "algorithm": "rsa", "bits": 2048, "public_key": "",
                             "state": "pending"},
     ["created: selector 's1', algorithm 'rsa', bits 2048, state 'pending'"]),
    ("dkim.generated", {"public_key": "", "problem": "x"},
     {"public_key": "MIIB" * 100, "problem": ""},
     ["public key set", "problem 'x' -> ''"]),
    ("dkim.published", {"state": "pending", "published": None, "checked": None},
     {"state": "published", "published": "2026-12-03T07:24:16.5+00:00", "checked": "z"},
     ["state 'pending' -> 'published'", "published none -> 2026-12-03 07:24"]),
    ("dkim.rotation", {"days": 30}, {"days": 90}, ["days 30 -> 90"]),
    ("dkim.rotation", None, {"days": 90}, ["days 90"]),
    ("dkim.remove", {"selector": "s1"}, None, ["deleted"]),
    # dnscheck.*, mailhost.*, tables.*
    ("dnscheck.request", None, {"run": 12}, ["run #12"]),
    ("mailhost.update", {"mx_hosts": ["a"]}, {"mx_hosts": ["a", "b"]}, ["MX hosts a -> a, b"]),
    ("mailhost.apply_request", None, {"apply": 4, "check_only": True},
     ["apply #4, check only yes"]),
    ("mailhost.apply", None, {"apply": 4, "outcome": "applied", "files": ["/etc/a", "/etc/b"],
                              "rolled_back": False},
     ["apply #4, outcome 'applied', files /etc/a, /etc/b, rolled back no"]),
    ("tables.adopt", None, {"changes": ["x"], "rows": {"users": 3}},
     ["changes x, rows users=3"]),
    # admin.*
    ("admin.create", None, {"username": "n@a", "superadmin": False, "domains": ["a", "b"]},
     ["created: username 'n@a', superadmin no, domains a, b"]),
    ("admin.domains", {"domains": ["a"]}, {"domains": ["a", "b"]}, ["domains a -> a, b"]),
    ("admin.password", None, None, ["password changed"]),
    ("admin.disable", {"active": True}, {"active": False}, ["disabled"]),
    ("admin.delete", {"username": "n@a"}, None, ["deleted"]),
    # An action or key this module does not know still reads.
    ("thing.frobnicate", {"colour": "red"}, {"colour": "blue"}, ["colour 'red' -> 'blue'"]),
    ("thing.frobnicate", None, None, []),
])
def test_each_action_family_reads_as_a_change(action, before, after, lines):
    assert describe(action, before, after) == lines


def test_an_import_is_one_line_with_its_figures():
    after = {"kind": "mailboxes", "rows": 10_000, "created": 10_000, "disabled": 2}
    assert describe("domain.import", None, after, domain="example.org", actor="ann") == [
        "import of 10,000 mailboxes into example.org by ann: 10,000 created, 2 disabled"]
    assert describe("domain.import", None, {"kind": "aliases", "rows": 3, "created": 3}) == [
        "import of 3 aliases: 3 created"]
    assert describe("domain.import", None, None) == ["import of ? rows: ? created"]


def test_secrets_are_never_shown():
    lines = describe("x.update", {"password": "{ARGON2ID}old", "private_key": "K1"},
                     {"password": "{ARGON2ID}new", "private_key": "K2"})
    assert lines == ["password changed", "private key changed"]
    assert "ARGON2ID" not in " ".join(describe("x.create", None, {"password": "{ARGON2ID}h"}))


def test_long_and_odd_values_are_shortened_not_raised():
    long = "x" * 5000
    (line,) = describe("mailbox.update", {"name": long}, {"name": "<b>"})
    assert len(line) < 200 and line.endswith("'<b>'")
    assert value_text("addresses", [f"a{i}" for i in range(50)]).endswith("(+40 more)")
    for odd in ([None], {"a": [1]}, 1.5, -3, True, {}):
        describe("x.update", {"k": odd}, {"k": "v"})
    assert describe("x.update", "not a dict", ["nor", "this"]) == []  # type: ignore[arg-type]


def _written_actions() -> set[str]:
    """Every action string the code passes to an audit row."""
    found: set[str] = set()
    patterns = [re.compile(r'action(?:=f?|: str = )"([a-z]+\.[a-z_]+)"'),
                re.compile(r'_audit_change\(\w+, "([a-z]+\.[a-z_]+)"'),
                re.compile(r'"([a-z]+\.(?:enable|disable|apply_check|apply))"')]
    for app in ("accounts", "core", "dkim", "dnscheck", "domains", "mailhost", "clientsetup",
                "vacation"):
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            text = path.read_text()
            for pattern in patterns:
                found.update(pattern.findall(text))
            for kind in re.findall(r'_switch\(\w+, "([a-z]+)"', text):
                found.update({f"{kind}.enable", f"{kind}.disable"})
    return found


def test_the_filter_offers_every_action_written():
    written = _written_actions()
    assert {"mailbox.create", "domain.import", "dkim.published", "mailhost.apply"} <= written
    assert written <= set(ACTIONS), sorted(written - set(ACTIONS))


def test_a_domain_admin_is_offered_only_actions_of_domains():
    offered = action_choices(superadmin=False)
    assert "mailbox.*" in offered and "mailbox.update" in offered and "dkim.seen" in offered
    assert not [a for a in offered if a.split(".")[0] in {"admin", "mailhost", "tables"}]
    assert not set(offered) & NAME_ONLY
    # Of the twofactor family, the two actions written with a domain's id.
    assert [a for a in offered if a.startswith("twofactor.")] == [
        "twofactor.*", "twofactor.domain", "twofactor.reset"]
    everything = action_choices(superadmin=True)
    assert {"admin.*", "mailhost.*", "admin.create", *NAME_ONLY} <= set(everything)


def test_a_summary_does_not_repeat_the_object_it_is_about():
    after = {"email": "bob@a.example", "quota": 2 * G, "active": True}
    assert describe("mailbox.create", None, after, obj="bob@a.example") == [
        "created: quota 2G, enabled"]
    assert describe("mailbox.create", None, {"email": "bob@a.example"}, obj="bob@a.example") == [
        "created"]
    # A change of the name itself still reads in full.
    assert describe("domain.update", {"name": "a"}, {"name": "b"}, obj="b") == ["name 'a' -> 'b'"]


def test_an_accounts_own_changes_read_as_sentences():
    assert describe("admin.own_password", None, {"other_sessions_ended": 2}) == [
        "own password changed; other sessions ended: 2"]
    assert describe("session.end", None, {"started": "2026-12-03T08:00:00+00:00",
                                          "ip": "192.0.2.7",
                                          "browser": "Firefox on Linux"}) == [
        "session ended (Firefox on Linux, 192.0.2.7)"]
    assert describe("session.end_others", None, {"ended": 3}) == ["other sessions ended: 3"]
