"""The Postfix and Dovecot configuration mailadmin's tables need.

Each daemon query is written once here and rendered for MariaDB (`mysql:`)
or SQLite (`sqlite:`); only string concatenation differs between the two.
Every query starts from a unique key (an address or a domain name) and
follows primary keys from there, so each is a handful of index lookups.

Postfix's `%u` suppresses a query whose key has an empty local part
(`@domain`): the alias-domain maps rely on that, which is why each lookup
shape is its own map file.

What the files say about the host (its name, the Maildir layout, the
daemons' database) comes from its MailHost row, passed in.
"""

from __future__ import annotations

import os
import pwd
import re
import string
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Engine

from core.env import database_from_url
from mailhost import app_password_lookup
from mailhost.addresses import MAILBOX_SPECIALS
from mailhost.models import MailHost

TEMPLATE_DIR = Path(settings.BASE_DIR) / "deploy" / "templates"

ACTIVE_DOMAIN = "d.active = 1"


def _concat(dialect: str, *parts: str) -> str:
    if dialect == "mysql":
        return "CONCAT(" + ", ".join(parts) + ")"
    return "(" + " || ".join(parts) + ")"


def _alias_domain_join(dialect: str, table: str, key_column: str, local: str) -> str:
    """FROM-clause reaching `table` through an alias domain: %d is the alias domain."""
    target = _concat(dialect, local, "d.name") if local else "d.name"
    return (
        "FROM alias_domains ad "
        "JOIN domains d ON d.id = ad.target_domain_id "
        f"JOIN {table} ON {key_column} = {target} "
        "WHERE ad.name = '%d' AND ad.active = 1 AND " + ACTIVE_DOMAIN
    )


def _deliverable_destinations(dialect: str, alias_from: str) -> str:
    """The destinations of the alias row `alias_from` selects, one row each,
    keeping only those Postfix can deliver.

    A destination that cannot be delivered (a disabled mailbox, one in a
    disabled domain, a disabled or vanished alias) would be accepted at RCPT
    and bounced afterwards: backscatter. Left out here, an alias with nothing
    deliverable answers nothing, so smtpd refuses it with 550 at RCPT, and an
    alias with a mix delivers to the live ones. A destination outside our
    domains (external, or an alias domain, which its own maps resolve) stays.

    The check is one level deep: a destination that is an active alias of an
    active domain counts as deliverable whatever its own destinations are.
    Mail to A whose only destination is alias B, with nothing deliverable
    left in B (its mailbox disabled), is still accepted at RCPT (A answers B),
    then B answers nothing and the message bounces. Checking B's list too
    means a second split and five more joins per destination, roughly
    doubling a lookup again; the panel's own aliases rarely chain.

    The comma list becomes a JSON array split by the database's own table
    function (MariaDB 10.6+ JSON_TABLE, SQLite json_each). The panel writes
    lowercase lists with one comma between addresses, but a list it did not
    write (an adopted database, a hand edit; `adopt` normalises them) must
    not lose a destination: the list is lowercased (SQLite compares
    case-sensitively), a space separates like a comma and empty items are
    skipped, and JSON_QUOTE escapes any `"`, backslash or control character
    (a malformed array is an error, and Postfix defers every message to the
    alias). All of that is per row, not per item. Each item is then checked
    by unique-key lookups; Postfix joins the rows with commas. Measured on
    MariaDB 10.11, this costs about twice the old single-row lookup (0.3 ms
    against 0.15); a recursive CTE did the same on both databases at ten times.
    """
    quoted = "JSON_QUOTE" if dialect == "mysql" else "json_quote"
    # JSON_QUOTE gives one JSON string; its escapes hold no comma, so turning
    # each comma into `","` makes it an array of the items.
    listed = _concat(dialect, "'['", (
        f"REPLACE({quoted}(REPLACE(LOWER(a.destinations), ' ', ',')), ',', '\",\"')"), "']'")
    if dialect == "mysql":
        split = f"JSON_TABLE({listed}, '$[*]' COLUMNS (address VARCHAR(254) PATH '$')) AS dest"
        address = "dest.address"
    else:
        split = f"json_each({listed}) AS dest"
        address = "dest.value"
    joins, _, where = alias_from.partition(" WHERE ")
    # LEFT JOINs on unique keys (at most one row each), not EXISTS subqueries:
    # one query block plans in about two thirds of the time on MariaDB.
    return (
        f"SELECT {address} {joins} JOIN {split} "
        f"LEFT JOIN users u ON u.email = {address} AND u.active = 1 "
        "LEFT JOIN domains ud ON ud.id = u.domain_id AND ud.active = 1 "
        f"LEFT JOIN aliases b ON b.source = {address} AND b.active = 1 "
        "LEFT JOIN domains bd ON bd.id = b.domain_id AND bd.active = 1 "
        f"LEFT JOIN domains xd ON xd.name = SUBSTR({address}, INSTR({address}, '@') + 1) "
        f"WHERE {where} AND {address} <> '' "
        "AND (ud.id IS NOT NULL OR bd.id IS NOT NULL OR xd.id IS NULL)"
    )


def postfix_queries(dialect: str) -> dict[str, str]:
    """Map file name -> query, in the order Postfix should consult them."""
    local_at = "'%u@'" if dialect == "sqlite" else "'%u', '@'"
    catchall_of = "'@'"
    mailbox_self = (
        "SELECT u.email FROM users u JOIN domains d ON d.id = u.domain_id "
        "WHERE u.email = '%s' AND u.active = 1 AND " + ACTIVE_DOMAIN
    )
    alias = _deliverable_destinations(dialect, (
        "FROM aliases a JOIN domains d ON d.id = a.domain_id "
        "WHERE a.source = '%s' AND a.active = 1 AND " + ACTIVE_DOMAIN
    ))
    aliasdomain_mailbox = "SELECT u.email " + _alias_domain_join(
        dialect, "users u", "u.email", local_at) + " AND u.active = 1"
    aliasdomain_alias = _deliverable_destinations(dialect, _alias_domain_join(
        dialect, "aliases a", "a.source", local_at) + " AND a.active = 1")
    # Answers only the `@alias.example` key, so a real mailbox reached
    # through the alias domain always wins over the target's catch-all.
    aliasdomain_catchall = _deliverable_destinations(dialect, _alias_domain_join(
        dialect, "aliases a", "a.source", catchall_of) + (
        " AND a.active = 1 AND '%s' = " + _concat(dialect, "'@'", "ad.name")))
    return {
        "domains.cf": (
            "SELECT 1 FROM domains d WHERE d.name = '%s' AND " + ACTIVE_DOMAIN + " "
            "UNION ALL SELECT 1 FROM alias_domains ad JOIN domains d ON d.id = "
            "ad.target_domain_id WHERE ad.name = '%s' AND ad.active = 1 AND " + ACTIVE_DOMAIN
        ),
        "mailboxes.cf": mailbox_self.replace("SELECT u.email", "SELECT 1", 1),
        "aliases.cf": alias,
        "mailbox-self.cf": mailbox_self,
        "aliasdomain-mailboxes.cf": aliasdomain_mailbox,
        "aliasdomain-aliases.cf": aliasdomain_alias,
        "aliasdomain-catchall.cf": aliasdomain_catchall,
        **_sender_login(dialect, local_at),
    }


def _sender_login(dialect: str, local_at: str) -> dict[str, str]:
    """Who may send as an address: the mailbox itself or the local recipients of
    the alias, in our domain or through an alias domain.

    An address is in one of our domains or in an alias domain, never both, so
    two maps consulted in order give the same answer as one UNION, at the
    planning cost of a single SELECT each. The %u makes Postfix skip the
    `@domain` key: a catch-all grants nobody the right to send as every
    address of a domain.
    """
    owners = (
        "SELECT COALESCE(u.email, a.destinations) FROM {source} "
        "LEFT JOIN users u ON u.email = {address} AND u.domain_id = d.id AND u.active = 1 "
        "LEFT JOIN aliases a ON a.source = {address} AND a.domain_id = d.id "
        "AND a.active = 1 WHERE {where} AND " + ACTIVE_DOMAIN +
        " AND (u.id IS NOT NULL OR a.id IS NOT NULL)"
    )
    return {
        "sender-login.cf": owners.format(
            source="domains d", address="'%u@%d'", where="d.name = '%d'"),
        "aliasdomain-sender-login.cf": owners.format(
            source="alias_domains ad JOIN domains d ON d.id = ad.target_domain_id",
            address=_concat(dialect, local_at, "d.name"),
            where="ad.name = '%d' AND ad.active = 1"),
    }


VIRTUAL_ALIAS_ORDER = [
    "aliases.cf", "mailbox-self.cf", "aliasdomain-mailboxes.cf",
    "aliasdomain-aliases.cf", "aliasdomain-catchall.cf",
]
SENDER_LOGIN_ORDER = ["sender-login.cf", "aliasdomain-sender-login.cf"]


def dovecot_username_chars() -> str:
    """Dovecot's auth_username_chars: every character the panel accepts in a
    mailbox's address (addresses.MAILBOX_SPECIALS), so every mailbox it
    creates can sign in and receive over LMTP (Dovecot's default list refuses
    e.g. o'brien@ after Postfix accepted it).

    Uppercase stays in: Dovecot checks the name as typed, before %Lu lowers it.
    The value is written in double quotes (a bare `#` starts a comment), so it
    must hold no `"` or backslash; `%` and `/` are refused by the validator.
    """
    chars = string.ascii_lowercase + string.ascii_uppercase + string.digits + ".@"
    chars += "".join(c for c in MAILBOX_SPECIALS if c not in chars)
    if any(c in chars for c in '"\\%/'):
        raise ImproperlyConfigured(f"cannot render auth_username_chars from {chars!r}")
    return chars


# With the login cache the SQL passdb only looks the mailbox up (noauthenticate)
# and hands the stored hash to the Lua passdb behind it as a userdb_ field:
# those stay inside Dovecot's auth process (never sent to the login process),
# and the userdb's override_fields removes it before the mail process sees it.
LOGIN_CACHE_FIELD = "mailadmin_stored"


def dovecot_queries(dialect: str, host: MailHost, *, login_cache: bool = False
                    ) -> dict[str, str]:
    active_user = (
        "FROM users u JOIN domains d ON d.id = u.domain_id "
        "WHERE u.email = '%u' AND u.active = 1 AND " + ACTIVE_DOMAIN
    )
    quota_rule = _concat(dialect, "'*:bytes='", "u.quota")
    # A domain whose mail programs must use app passwords: the main password
    # answers no Dovecot service (the panel checks it itself). The login
    # cache's lookup still finds the mailbox, with no hash to check against,
    # so the app-password passdbs behind it run.
    password_columns = (f"NULL AS password, CASE WHEN d.require_app_passwords = 0 THEN "
                        f"u.password END AS userdb_{LOGIN_CACHE_FIELD}, 'Y' AS noauthenticate"
                        if login_cache else "u.password")
    main_only = "" if login_cache else " AND d.require_app_passwords = 0"
    return {
        "password_query": f"SELECT u.email AS user, {password_columns} {active_user}{main_only}",
        "user_query": (
            f"SELECT '{host.dovecot_home}' AS home, {host.vmail_uid} AS uid, "
            f"{host.vmail_gid} AS gid, {quota_rule} AS quota_rule {active_user}"
        ),
        "iterate_query": (
            "SELECT u.email AS user FROM users u JOIN domains d ON d.id = u.domain_id "
            "WHERE u.active = 1 AND " + ACTIVE_DOMAIN
        ),
    }


# The app password's stored hash, handed to the Lua passdb like LOGIN_CACHE_FIELD.
APP_PASSWORD_FIELD = "mailadmin_app_stored"  # noqa: S105 (a field name, no secret)
# The app password's row id and the directory of the usage file, handed over
# the same way: the Lua passdb appends a line for each login it accepted with
# an app password (apppasswords/usage.py reads them).
APP_PASSWORD_ID_FIELD = "mailadmin_app_id"  # noqa: S105 (a field name, no secret)
APP_USAGE_FIELD = "mailadmin_app_usage"
# Dovecot's %s (the service asking) -> the app_passwords column allowing it.
# Postfix's SMTP AUTH through Dovecot SASL asks as "smtp"; ManageSieve as "sieve".
APP_PASSWORD_SERVICES = {"imap": "imap", "smtp": "smtp", "submission": "smtp", "sieve": "sieve"}


def dovecot_app_password_query(*, login_cache: bool = False, usage_dir: str = "") -> str:
    """The second passdb's password_query: the app password whose lookup is
    the salted hash of the typed password (mailhost/app_password_lookup.py),
    for this mailbox (%u), live, allowed for the asking service (%s), in an
    active mailbox of an active domain.

    One row at most: `lookup` is a unique column (Dovecot 2.3's SQL passdb
    fails when a query returns several rows, it does not try each). Only the
    hash is in the query text, never the typed password (%w): this passdb
    runs on every login that reaches it, main passwords too. Every value
    Dovecot puts in is SQL-escaped by Dovecot; the hash is hex.

    With the login check, the row's id and `usage_dir` (app_usage_dir(): plain
    characters, no quote) go to the Lua passdb as userdb_ fields, for the usage
    line it appends. A constant column, not the passdb's default_fields:
    measured on Dovecot 2.3.19, an SQL passdb's default_fields never reach the
    Lua passdb behind it (a static passdb's do).
    """
    service = " OR ".join(
        f"('%s' = '{name}' AND a.{column} = 1)" for name, column in APP_PASSWORD_SERVICES.items())
    columns = (f"NULL AS password, a.password AS userdb_{APP_PASSWORD_FIELD}, "
               f"a.id AS userdb_{APP_PASSWORD_ID_FIELD}, "
               f"'{usage_dir}' AS userdb_{APP_USAGE_FIELD}, 'Y' AS noauthenticate"
               if login_cache else "a.password")
    return (
        f"SELECT u.email AS user, {columns} FROM app_passwords a "
        "JOIN users u ON u.id = a.mailbox_id JOIN domains d ON d.id = u.domain_id "
        f"WHERE a.lookup = '{app_password_lookup.dovecot_lookup_expression()}' AND u.email = '%u' "
        f"AND a.revoked IS NULL AND u.active = 1 AND {ACTIVE_DOMAIN} AND ({service})"
    )


# quota_clone's two values (Dovecot's dict keys) and the column each lands in.
QUOTA_DICT_COLUMNS = {"priv/quota/storage": "bytes", "priv/quota/messages": "messages"}
QUOTA_WARNINGS = (80, 95)


def quota_dict_connect(db: DaemonDatabase) -> str:
    """Where Dovecot's dict process writes quota usage (dovecot-dict-sql.conf.ext).

    MariaDB: the panel's own `quota_usage` table, as the daemons' user, which
    may write that table and no other (README). SQLite: the daemons may only
    read the panel's file, so Dovecot writes a small file of its own
    (MAILADMIN_DOVECOT_QUOTA_DB) that the panel copies in (domains.quota_file).
    """
    if db.dialect == "sqlite":
        path = settings.MAILADMIN_DOVECOT_QUOTA_DB
        if not os.path.isabs(path) or any(c.isspace() for c in path):
            raise ImproperlyConfigured(
                f"MAILADMIN_DOVECOT_QUOTA_DB={path!r}: an absolute path without spaces")
        return str(path)
    return db.dovecot_connect


def vmail_user(uid: int) -> str:
    """The vmail uid's user name, or "" when it has none. Dovecot names a
    socket's or a service's user only by name, so without one the dict socket
    stays open to every local user and no quota warnings are rendered."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def quota_warning_script() -> str:
    """The script Dovecot's quota-warning service runs (root's, beside the helper)."""
    path = str(settings.MAILADMIN_DOVECOT_QUOTA_WARNING)
    if not os.path.isabs(path) or any(c.isspace() or c in '"\\' for c in path):
        raise ImproperlyConfigured(
            f"MAILADMIN_DOVECOT_QUOTA_WARNING={path!r}: an absolute path without spaces")
    return path


# The dict service's socket Pigeonhole asks for each mailbox's panel script
# (relative to Dovecot's base_dir), separate from any other dict listener.
SIEVE_DICT_SOCKET = "mailadmin-sieve-dict"


def dovecot_sieve(host: MailHost) -> dict[str, str]:
    """What the auto-reply and forwarding block of the Dovecot fragment needs
    (deploy/templates/dovecot/sieve.conf and dovecot-dict-sieve.conf.ext).

    The dict socket is the mail user's alone: delivery (LMTP) asks it as that
    user, and nobody else may read other mailboxes' scripts through it.
    Dovecot names a listener's owner by user name only; a mail uid without a
    passwd entry (which Dovecot otherwise accepts) leaves the socket open to
    every local user (`user` empty): they could read the scripts (reply texts,
    forward addresses), never change them (the database user reads only).
    """
    # Without Pigeonhole, `mail_plugins = sieve` makes LMTP refuse every message.
    plugin = os.path.join(settings.MAILADMIN_DOVECOT_MODULE_DIR, "lib90_sieve_plugin.so")
    if not os.path.exists(plugin):
        raise ImproperlyConfigured(
            f"auto-reply and forwarding need Dovecot's Sieve plugin ({plugin} is missing): "
            "apt install dovecot-sieve")
    return {"socket": SIEVE_DICT_SOCKET, "user": vmail_user(host.vmail_uid)}


@dataclass
class DaemonDatabase:
    dialect: str  # "mysql" or "sqlite"
    name: str
    host: str = ""
    port: int = 3306
    user: str = ""
    password: str = ""
    socket: str = ""

    @property
    def postfix_hosts(self) -> str:
        return f"unix:{self.socket}" if self.socket else f"inet:{self.host}:{self.port}"

    @property
    def postfix_type(self) -> str:
        return self.dialect

    @property
    def dovecot_connect(self) -> str:
        if self.dialect == "sqlite":
            return self.name
        # Dovecot takes a host starting with / as the server's unix socket.
        where = [f"host={self.socket}"] if self.socket else [f"host={self.host}",
                                                              f"port={self.port}"]
        parts = [*where, f"dbname={self.name}", f"user={self.user}"]
        if self.password:
            parts.append(f"password={self.password}")
        return " ".join(parts)


def _daemon_password() -> str:
    """The daemons' database password: from the environment, never from the row."""
    url = settings.MAILADMIN_DAEMON_DATABASE_URL
    return str(database_from_url(url).get("PASSWORD", "")) if url else ""


def daemon_database(host: MailHost, url: str | None = None) -> DaemonDatabase:
    """What the daemons connect to: `url` (render_config --database-url) as it
    is, else the host's daemon database with the password of
    MAILADMIN_DAEMON_DATABASE_URL, else the panel's own database reached as
    the read-only user `mailadmin_ro`."""
    if url:
        entry: dict[str, Any] = database_from_url(url)
        password = str(entry.get("PASSWORD", ""))
    elif host.daemon_database:
        entry = database_from_url(host.daemon_database)
        password = _daemon_password()
    else:
        entry, password = settings.DATABASES["default"], ""
    if str(entry["ENGINE"]).endswith("sqlite3"):
        return DaemonDatabase("sqlite", str(entry["NAME"]))
    named = bool(url or host.daemon_database)
    database = DaemonDatabase(
        "mysql", str(entry["NAME"]), host=str(entry["HOST"]), port=int(entry["PORT"] or 3306),
        user=str(entry["USER"]) if named else "mailadmin_ro", password=password,
        socket=str(entry["OPTIONS"].get("unix_socket", "")),
    )
    # Dovecot's `connect =` line is split on spaces and has no quoting.
    if any(c.isspace() for c in database.user + database.password + database.name):
        raise ImproperlyConfigured(
            "the daemons' database user, password and name cannot contain spaces")
    return database


@dataclass
class RenderOptions:
    host: MailHost
    database: DaemonDatabase
    postfix_dir: str = field(default_factory=lambda: settings.MAILADMIN_POSTFIX_DIR)
    dovecot_dir: str = field(default_factory=lambda: settings.MAILADMIN_DOVECOT_DIR)
    rspamd_dir: str = field(default_factory=lambda: settings.MAILADMIN_RSPAMD_DIR)
    # Whether the files include Rspamd's local.d (rspamd/local.d/...). Off
    # until apply_config installs them; render_config writes them.
    with_rspamd: bool = False


def _listener(value: str, setting: str) -> dict[str, str]:
    """`unix:path` or `inet:host:port` as the pieces Postfix and Dovecot want.

    A relative unix path is relative to Postfix's queue directory, where
    Dovecot must create the socket. Postfix spells the two differently: the
    LMTP transport wants `unix:path` / `inet:host:port`, while
    `smtpd_sasl_path` wants a bare path or `inet:host:port`.
    """
    kind, _, rest = value.partition(":")
    if kind == "inet":
        host, _, port = rest.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(f"{setting}={value!r}: write inet:HOST:PORT")
        return {"kind": "inet", "host": host, "port": port, "transport": value,
                "sasl_path": value}
    if kind != "unix" or not rest:
        raise ImproperlyConfigured(f"{setting}={value!r}: write unix:PATH or inet:HOST:PORT")
    queue = settings.MAILADMIN_POSTFIX_QUEUE_DIR.rstrip("/")
    dovecot_path = rest if rest.startswith("/") else f"{queue}/{rest}"
    return {"kind": "unix", "path": dovecot_path, "transport": value, "sasl_path": rest}


def _milter() -> dict[str, str] | None:
    """MAILADMIN_RSPAMD_MILTER as Postfix names it and as Rspamd binds it; None when empty.

    Only inet: a unix socket would need Rspamd to create it with a mode
    Postfix's smtpd (user postfix) can connect through.
    """
    value = settings.MAILADMIN_RSPAMD_MILTER.strip()
    if not value:
        return None
    if not value.startswith("inet:"):
        raise ImproperlyConfigured(
            f"MAILADMIN_RSPAMD_MILTER={value!r}: write inet:HOST:PORT, or leave it empty")
    return _listener(value, "MAILADMIN_RSPAMD_MILTER")


RSPAMD_FILES = ["worker-proxy.inc", "milter_headers.conf", "dkim_signing.conf", "arc.conf"]

# Domain name -> the keys it signs with, each with `selector`, `algorithm` and
# `path` (read from the key directory's setting). The keys are the dkim app's,
# which sits above this one (it sends its work to the mail host), so it hands
# its reader over when Django starts (dkim/apps.py) instead of being imported.
SigningKeys = Callable[[str], Mapping[str, Sequence[Any]]]
_signing_keys: list[SigningKeys] = []


def read_signing_keys_with(reader: SigningKeys) -> None:
    """Where dkim_signing.conf's keys come from (called once, by the dkim app)."""
    _signing_keys[:] = [reader]


def _dkim_domains(key_dir: str) -> Mapping[str, Sequence[Any]]:
    return _signing_keys[0](key_dir) if _signing_keys else {}


def _tls_file(setting: str) -> str:
    """The path in `setting`, refused when it is plainly not there.

    Postfix starts without its certificate and only fails each TLS handshake
    (so the submission port, which requires TLS, is dead) and logs it
    per connection. The default is Debian's snakeoil pair, which exists only
    where ssl-cert generated it. A path this process may not look into
    (e.g. /etc/ssl/private as non-root) is left for Postfix to judge.
    """
    path = str(getattr(settings, setting))
    try:
        os.stat(path)
    except FileNotFoundError:
        raise ImproperlyConfigured(
            f"{setting}={path}: no such file; Postfix TLS and the submission port would not "
            "work (point it at the host's certificate, or run "
            "`make-ssl-cert generate-default-snakeoil` for Debian's self-signed pair)") from None
    except OSError:
        pass
    return path


def _login_cache_file() -> str:
    """MAILADMIN_DOVECOT_LOGIN_CACHE, refused when Dovecot could not load it: a
    missing script or a missing Lua passdb module fails every login."""
    path = settings.MAILADMIN_DOVECOT_LOGIN_CACHE
    if not path:
        return ""
    if not os.path.isabs(path) or not os.path.isfile(path):
        raise ImproperlyConfigured(
            f"MAILADMIN_DOVECOT_LOGIN_CACHE={path}: no such file (deploy/install puts "
            "deploy/dovecot/mailadmin-login-cache.lua in place; or set it to none)")
    module = os.path.join(settings.MAILADMIN_DOVECOT_MODULE_DIR, "auth", "libauthdb_lua.so")
    if not os.path.exists(module):
        raise ImproperlyConfigured(
            f"the Dovecot login cache needs the Lua passdb ({module} is missing): "
            "apt install dovecot-auth-lua, or set MAILADMIN_DOVECOT_LOGIN_CACHE=none")
    if any(c.isspace() or c in '"\\' for c in path):
        raise ImproperlyConfigured(
            f"MAILADMIN_DOVECOT_LOGIN_CACHE={path!r}: a path without spaces or quotes")
    return path


def app_usage_dir() -> str:
    """MAILADMIN_DOVECOT_APP_USAGE_DIR, as the login check and the root helper
    accept it: an absolute path of plain characters (the Lua passdb writes
    nothing elsewhere; the helper installs it only equal to its app_usage_dir)."""
    path = str(settings.MAILADMIN_DOVECOT_APP_USAGE_DIR)
    if not re.fullmatch(r"/[A-Za-z0-9/._-]{0,199}", path) or ".." in path:
        raise ImproperlyConfigured(
            f"MAILADMIN_DOVECOT_APP_USAGE_DIR={path!r}: an absolute path of letters, digits "
            "and / . _ - (no ..)")
    return path.rstrip("/") or "/"


def render(options: RenderOptions) -> dict[str, str]:
    """Relative path -> file content, for every file the daemons need."""
    db, host = options.database, options.host
    engine = Engine(dirs=[str(TEMPLATE_DIR)], autoescape=False)
    map_dir = f"{options.postfix_dir.rstrip('/')}/mailadmin"
    queries = postfix_queries(db.dialect)
    login_cache = _login_cache_file()
    common = {
        "db": db,
        "map_dir": map_dir,
        "map_type": db.postfix_type,
        "alias_maps": ", ".join(f"{db.postfix_type}:{map_dir}/{n}" for n in VIRTUAL_ALIAS_ORDER),
        "sender_login_maps": ", ".join(
            f"{db.postfix_type}:{map_dir}/{n}" for n in SENDER_LOGIN_ORDER),
        "hostname": host.mail_hostname,
        "smtp_listen": settings.MAILADMIN_SMTP_LISTEN,
        "submission_listen": settings.MAILADMIN_SUBMISSION_LISTEN,
        "lmtp": _listener(settings.MAILADMIN_LMTP, "MAILADMIN_LMTP"),
        "sasl": _listener(settings.MAILADMIN_SASL, "MAILADMIN_SASL"),
        "mynetworks": settings.MAILADMIN_MYNETWORKS,
        "local_alias_maps": settings.MAILADMIN_POSTFIX_ALIAS_MAPS,
        "tls_cert": _tls_file("MAILADMIN_TLS_CERT"),
        "tls_key": _tls_file("MAILADMIN_TLS_KEY"),
        "vmail_dir": host.vmail_dir.rstrip("/"),
        "vmail_uid": host.vmail_uid,
        "vmail_gid": host.vmail_gid,
        "dovecot_dir": options.dovecot_dir.rstrip("/"),
        "dovecot": dovecot_queries(db.dialect, host, login_cache=bool(login_cache)),
        "login_cache": login_cache,
        "quota_connect": quota_dict_connect(db),
        "quota_columns": QUOTA_DICT_COLUMNS,
        "quota_warnings": sorted(QUOTA_WARNINGS, reverse=True),
        "quota_warning_script": quota_warning_script(),
        "vmail_user": vmail_user(host.vmail_uid),
        "sieve": dovecot_sieve(host),
        "login_mode": settings.MAILADMIN_DOVECOT_LOGIN_MODE,
        "cpu_count": os.cpu_count() or 1,
        "login_cache_field": LOGIN_CACHE_FIELD,
        "app_password_field": APP_PASSWORD_FIELD,
        "app_password_id_field": APP_PASSWORD_ID_FIELD,
        "app_usage_field": APP_USAGE_FIELD,
        "app_password_query": dovecot_app_password_query(
            login_cache=bool(login_cache), usage_dir=app_usage_dir() if login_cache else ""),
        "username_chars": dovecot_username_chars(),
        "auth_cache": {"size": settings.MAILADMIN_DOVECOT_AUTH_CACHE_SIZE,
                       "ttl": settings.MAILADMIN_DOVECOT_AUTH_CACHE_TTL,
                       "negative_ttl": settings.MAILADMIN_DOVECOT_AUTH_CACHE_NEGATIVE_TTL},
        # The group the daemons read a SQLite database through (settings).
        "data_group": settings.MAILADMIN_DATA_GROUP if db.dialect == "sqlite" else "",
        "milter": _milter(),
        # Only rendered into dkim_signing.conf and arc.conf (with_rspamd): read only then.
        "dkim_domains": (_dkim_domains(settings.MAILADMIN_DKIM_KEY_DIR)
                         if options.with_rspamd else {}),
    }
    files: dict[str, str] = {}
    map_template = engine.get_template(f"postfix/map-{db.dialect}.cf")
    for name, query in queries.items():
        context = Context({**common, "query": query, "map_name": name}, autoescape=False)
        files[f"postfix/mailadmin/{name}"] = map_template.render(context)
    for template, target in [
        ("postfix/main.cf", "postfix/main.cf"),
        ("postfix/master.cf", "postfix/master.cf"),
        ("dovecot/90-mailadmin.conf", "dovecot/conf.d/90-mailadmin.conf"),
        ("dovecot/dovecot-sql.conf.ext", "dovecot/dovecot-sql.conf.ext"),
        ("dovecot/dovecot-sql-app-passwords.conf.ext",
         "dovecot/dovecot-sql-app-passwords.conf.ext"),
        ("dovecot/dovecot-dict-sql.conf.ext", "dovecot/dovecot-dict-sql.conf.ext"),
        ("dovecot/dovecot-dict-sieve.conf.ext", "dovecot/dovecot-dict-sieve.conf.ext"),
    ]:
        files[target] = engine.get_template(template).render(Context(common, autoescape=False))
    if options.with_rspamd and common["milter"]:
        for name in RSPAMD_FILES:
            files[f"rspamd/local.d/{name}"] = engine.get_template(f"rspamd/{name}").render(
                Context(common, autoescape=False))
    return files


# Files holding the daemon database password are readable by their daemon only.
SECRET_FILES = ("postfix/mailadmin/", "dovecot/dovecot-sql.conf.ext",
                "dovecot/dovecot-sql-app-passwords.conf.ext",
                "dovecot/dovecot-dict-sql.conf.ext", "dovecot/dovecot-dict-sieve.conf.ext")

# Postfix rereads main.cf in 300 ms pauses while its mtime is within the last
# second or so (util/dict.c, dict_load_file_xt: a file that may still be being
# edited), 1.5-2 s for one just written. Files here are written whole and
# renamed into place, so they are dated this far back and read at once; the
# helper gives the files it installs the same age (`settled_mtime_ns`).
SETTLED_AGE_SECONDS = 5


def write_tree(files: dict[str, str], out: Path) -> list[Path]:
    """Write every file atomically (temp file + rename); returns the files that changed."""
    changed: list[Path] = []
    for relative, content in sorted(files.items()):
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.read_bytes() == content.encode():
            continue
        mode = 0o640 if relative.startswith(SECRET_FILES) else 0o644
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            settled = time.time_ns() - SETTLED_AGE_SECONDS * 1_000_000_000
            os.utime(handle.fileno(), ns=(settled, settled))
        if path.exists():
            # An installed file keeps the owner, group and mode the admin gave it
            # (e.g. root:dovecot 0640), so the daemon can still read it.
            current = path.stat()
            os.chown(tmp, current.st_uid, current.st_gid)
            mode = current.st_mode & 0o777
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        changed.append(path)
    return changed

