"""An audit row's change as short lines a person reads ("quota 2G -> 3G", "disabled").

Pure functions of the row's action and its before/after values: no database,
no settings, so the page, a command or a test can call them alike. Keys this
module does not know still read well ("key: a -> b"); values are shortened so
a huge list or key never floods the page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Byte counts: shown as 2G, 512M; 0 means no limit on these columns.
SIZE_KEYS = frozenset({"quota", "max_quota", "default_quota"})
# Counts where 0 means no limit (domains.models.Domain).
LIMIT_KEYS = frozenset({"max_mailboxes", "max_aliases"})
# Values that name another record by its number: "run #12".
REFERENCE_KEYS = frozenset({"run", "apply", "job", "import_job"})
# Keys never shown, should one ever reach a row (core.audit.snapshot leaves them out).
SECRET_KEYS = frozenset({"password", "password_hash", "private_key", "secret", "token"})
# Columns whose change says nothing on its own (the row's id, timestamps set with the change).
QUIET_KEYS = frozenset({"id", "modified", "created", "password_changed", "checked"})
LABELS = {
    "max_quota": "domain quota",
    "default_quota": "default mailbox quota",
    "max_mailboxes": "mailbox limit",
    "max_aliases": "alias limit",
    "scheme": "password hash scheme",
    "public_key": "public key",
    "maildir_kept": "Maildir kept at",
    "maildirs_kept": "Maildirs kept",
    "ttl_seen": "TTL seen",
    "mx_hosts": "MX hosts",
    "public_ipv4": "IPv4",
    "public_ipv6": "IPv6",
    "reply_enabled": "auto-reply on",
    "reply_subject": "auto-reply subject",
    "reply_text": "auto-reply text",
    "reply_from": "auto-reply from",
    "reply_until": "auto-reply until",
    "reply_days": "one auto-reply per sender every (days)",
    "forward_to": "forward to",
    "forward_keep": "keep a copy",
}
VALUE_MAX = 80
LIST_MAX = 10
_ISO_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)?$")
# Flat actions whose whole meaning is the action itself.
FIXED = {
    "mailbox.password": "password changed",
    "admin.password": "password changed",
    "mailbox.first_sign_in": "first sign-in",
}


def human_size(value: int) -> str:
    """2147483648 -> "2G", 1572864 -> "1.5M", 0 -> "unlimited"."""
    if value == 0:
        return "unlimited"
    for unit, size in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if value >= size:
            return f"{value / size:.1f}".removesuffix(".0") + unit
    return f"{value} B"


def label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " "))


def value_text(key: str, value: Any) -> str:
    """One value as shown: sizes human, strings quoted, lists joined, all shortened."""
    if key in SECRET_KEYS:
        return "(not shown)"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and key in SIZE_KEYS:
        return human_size(value)
    if value == 0 and key in LIMIT_KEYS:
        return "unlimited"
    if isinstance(value, int) and key in REFERENCE_KEYS:
        return f"#{value}"
    if isinstance(value, int | float):
        return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else str(value)
    if isinstance(value, list | tuple):
        shown = [_short(_plain(item)) for item in value[:LIST_MAX]]
        more = f" (+{len(value) - LIST_MAX} more)" if len(value) > LIST_MAX else ""
        return (", ".join(shown) or "none") + more
    if isinstance(value, Mapping):
        items = [f"{k}={_plain(v)}" for k, v in list(value.items())[:LIST_MAX]]
        more = f" (+{len(value) - LIST_MAX} more)" if len(value) > LIST_MAX else ""
        return _short(", ".join(items) or "none") + more
    text = str(value)
    if key == "destinations":
        return _short(", ".join(part.strip() for part in text.split(",") if part.strip()))
    if match := _ISO_TIME.match(text):
        return f"{match.group(1)} {match.group(2)}"
    return f"'{_short(text)}'"


def change_line(key: str, before: Any, after: Any) -> str:
    """One changed key: "quota 2G -> 3G", "disabled", "name 'A' -> 'B'"."""
    if key in SECRET_KEYS:
        return "password changed" if key.startswith("password") else f"{label(key)} changed"
    if key == "active" and isinstance(after, bool):
        return "enabled" if after else "disabled"
    if key == "public_key":
        return "public key set" if after else "public key removed"
    return f"{label(key)} {value_text(key, before)} -> {value_text(key, after)}"


def describe(action: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
             *, domain: str = "", actor: str = "", obj: str = "") -> list[str]:
    """The row's change as lines; an empty list when the row holds nothing to say.

    `obj`: the row's object as the page names it; a summary leaves out the
    value that only repeats it (the email of a created mailbox).
    """
    lines = _lines(action, before, after, domain=domain, actor=actor, obj=obj)
    return [line for line in lines if line]


def _lines(action: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
           *, domain: str, actor: str, obj: str) -> list[str]:
    before = before if isinstance(before, Mapping) else {}
    after = after if isinstance(after, Mapping) else {}
    verb = action.rpartition(".")[2]
    if action == "domain.import":
        return [_import_line(after, domain=domain, actor=actor)]
    if action in FIXED:
        return [FIXED[action]]
    if action == "admin.own_password":
        return [f"own password changed; other sessions ended: "
                f"{_count(after.get('other_sessions_ended', 0))}"]
    if action == "session.end":
        where = ", ".join(str(after[key]) for key in ("browser", "ip") if after.get(key))
        return [f"session ended{f' ({where})' if where else ''}"]
    if action == "twofactor.reset":
        who = str(after.get("account") or obj or "the account")
        return [f"two-factor sign-in reset for {_short(who)}; "
                f"sessions ended: {_count(after.get('sessions_ended', 0))}"]
    if action == "session.end_others":
        return [f"other sessions ended: {_count(after.get('ended', 0))}"]
    if action == "domain.import_passwords_download":
        return [f"generated passwords downloaded (import {value_text('job', after.get('job'))})"]
    if verb in {"enable", "disable"} and set(before) | set(after) <= {"active"}:
        return ["enabled" if verb == "enable" else "disabled"]
    if verb in {"delete", "remove"}:
        # The object is named in its own column; what the row adds is how it went.
        return ["deleted", *([_summary("", after, obj)] if after else [])]
    if verb in {"create", "import", "generate", "set"} and after:
        return [_summary("created", after, obj)]
    if before and after:
        return [change_line(key, before.get(key), after.get(key))
                for key in _keys(before, after)
                if key not in QUIET_KEYS and before.get(key) != after.get(key)]
    if after:
        return [_summary("", after, obj)]
    if before:
        return [_summary("was", before, obj)]
    return []


def _import_line(after: Mapping[str, Any], *, domain: str, actor: str) -> str:
    """ "import of 10,000 rows into example.org by ann: 10,000 created, 2 disabled"."""
    kind = str(after.get("kind") or "rows")
    rows, created = after.get("rows"), after.get("created")
    text = f"import of {_count(rows)} {kind}"
    if domain:
        text += f" into {domain}"
    if actor:
        text += f" by {actor}"
    parts = [f"{_count(created)} created"]
    for key in ("disabled", "failed"):
        if after.get(key):
            parts.append(f"{_count(after[key])} {key}")
    return f"{text}: {', '.join(parts)}"


def _summary(opening: str, values: Mapping[str, Any], obj: str = "") -> str:
    """ "created: quota 2G, name 'Bob'" from a snapshot, quiet keys, empty values
    and the object's own name left out."""
    parts = []
    for key, value in values.items():
        if (key in QUIET_KEYS or key.endswith("_id") or value in (None, "", [], {})
                or (obj and value == obj)):
            continue
        if key == "active":
            parts.append("enabled" if value else "disabled")
        elif key == "public_key":
            parts.append("public key set")
        else:
            parts.append(f"{label(key)} {value_text(key, value)}")
    text = ", ".join(parts)
    if not opening:
        return text
    return f"{opening}: {text}" if text else opening


def _keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return list(dict.fromkeys([*before, *after]))


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _short(text: str) -> str:
    return text if len(text) <= VALUE_MAX else text[:VALUE_MAX - 1] + "…"


# Every action services write, for the log's action filter. A domain admin is
# offered what their reach can hold: those of DOMAIN_FAMILIES but NAME_ONLY,
# and DOMAIN_SCOPED. The others (admins, sessions, the mail host, an
# account's own second step) never carry a domain's id, so none of their rows
# is in a domain admin's reach.
ACTIONS = (
    "domain.create", "domain.update", "domain.enable", "domain.disable", "domain.delete",
    "domain.export", "domain.import", "domain.import_passwords_download",
    "mailbox.create", "mailbox.update", "mailbox.enable", "mailbox.disable", "mailbox.password",
    "mailbox.delete", "mailbox.import", "mailbox.rehash", "mailbox.first_sign_in",
    "mailbox.maildirs_reserved", "mailbox.maildir_removed", "mailbox.maildir_remove_failed",
    "mailbox.maildir_purge", "mailbox.app_password_create", "mailbox.app_password_revoke",
    "domain.app_passwords_required",
    "mailbox.auto_reply", "mailbox.forwarding",
    "alias.create", "alias.update", "alias.delete",
    "alias.import",
    "aliasdomain.create", "aliasdomain.enable", "aliasdomain.disable", "aliasdomain.delete",
    "dkim.generate", "dkim.generated", "dkim.set", "dkim.remove", "dkim.seen", "dkim.unseen",
    "dkim.published", "dkim.activate", "dkim.retire", "dkim.revoke", "dkim.gone",
    "dkim.domain_deleted", "dkim.rotation", "dkim.rotate",
    "dnscheck.request",
    "admin.create", "admin.domains", "admin.password", "admin.enable", "admin.disable",
    "admin.delete", "admin.own_password",
    "session.end", "session.end_others",
    "twofactor.enable", "twofactor.disable", "twofactor.recovery_codes", "twofactor.policy",
    "twofactor.domain", "twofactor.reset", "twofactor.key_add", "twofactor.key_remove",
    "mailhost.update", "mailhost.apply_request", "mailhost.apply_check", "mailhost.apply",
    "tables.adopt",
)
DOMAIN_FAMILIES = ("domain", "mailbox", "alias", "aliasdomain", "dkim", "dnscheck")
# Written under a domain's name only (a previous tenant's addresses): superadmins'.
NAME_ONLY = frozenset({"mailbox.maildirs_reserved", "mailbox.maildir_removed",
                       "mailbox.maildir_remove_failed", "mailbox.maildir_purge"})
# Actions of other families written with a domain's id (accounts/twofactor.py):
# a mailbox user's second step reset (under the mailbox's domain) and a domain's
# two-factor requirement. The family's other rows carry none: enable, disable
# and recovery codes (an account's own) and the all-admins policy.
DOMAIN_SCOPED = frozenset({"twofactor.reset", "twofactor.domain"})


def action_choices(*, superadmin: bool) -> list[str]:
    """What the action filter offers: each family as a prefix (mailbox.*), then each action."""
    actions = [a for a in ACTIONS if superadmin or a in DOMAIN_SCOPED
               or (a.partition(".")[0] in DOMAIN_FAMILIES and a not in NAME_ONLY)]
    families = list(dict.fromkeys(a.partition(".")[0] for a in actions))
    return [f"{family}.*" for family in families] + actions
