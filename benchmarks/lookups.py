"""How fast Postfix and Dovecot can look up a full-size mailadmin database on MariaDB.

Run from the project root:

    .venv/bin/python benchmarks/lookups.py [--domains 10000] [--mailboxes 200000]
                                           [--import 100000]

It builds its own database `mailadmin_bench` (dropped again at the end), loads
the fixture, renders the daemon configuration with `render_config`, then
measures:

* every Postfix map, through one real `postmap -q -` process per map;
* every daemon query, as EXPLAIN plans (any full or index scan is a FAIL) and
  as direct round trips on one connection (goal: under 0.2 ms each, 0.35 ms
  for the three alias maps that check each destination, see ALIAS_QUERY_GOAL_MS);
* a 100,000-mailbox import through `services.import_mailboxes` (goal: under 60 s).

The summary is printed and written to benchmarks/results/lookups-<date>.json.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import json
import os
import pstats
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import MySQLdb

PROJECT = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT / "benchmarks" / "results"

DB_HOST = "127.0.0.1"
DB_PORT = 3306
DB_NAME = "mailadmin_bench"
# Not `mailadmin_ro`: the integration tests create and use that user on the
# same server, and this script drops its user at the end.
RO_USER = "mailadmin_bench_ro"
RO_HOSTS = ("127.0.0.1", "localhost")
DAEMON_TABLES = ("domains", "users", "aliases", "alias_domains", "app_passwords")
POSTMAP = "/usr/sbin/postmap"

POSTMAP_MAPS = (
    "domains.cf", "mailboxes.cf", "aliases.cf", "mailbox-self.cf",
    "aliasdomain-mailboxes.cf", "aliasdomain-aliases.cf", "aliasdomain-catchall.cf",
    "sender-login.cf", "aliasdomain-sender-login.cf",
)
QUERY_GOAL_MS = 0.2
# The alias maps answer only deliverable destinations (550 at RCPT instead of
# a bounce to the sender: no backscatter). Splitting the destination list
# with JSON_TABLE and checking each item by unique keys costs about 0.1 ms
# more than reading the list, nearly all of it planning (ANALYZE: optimize
# ~0.09 ms, execute ~0.02 ms; every join eq_ref). STRAIGHT_JOIN, dropping two
# joins, and NOT EXISTS subqueries (ten times slower) bought nothing, measured
# interleaved on MariaDB 10.11. Refusing at RCPT is worth that 0.1 ms, so
# these three maps get their own, explicit goal; every other map keeps 0.2 ms.
ALIAS_QUERY_GOAL_MS = 0.35
ALIAS_SPLIT_MAPS = frozenset({"aliases.cf", "aliasdomain-aliases.cf", "aliasdomain-catchall.cf"})
IMPORT_GOAL_S = 60.0
SCAN_TYPES = {"ALL", "index"}
ANALYZE_RUNS = 100
IMPORT_DOMAIN = "import.example"
PROFILE_DOMAIN = "import-profile.example"
LOAD_BATCH = 5000


# ---------------------------------------------------------------- fixture shape


@dataclass(frozen=True)
class Fixture:
    """The synthetic mail host; every name below is derived from an index.

    Domain n is `domain{n}.example` with mailboxes `user0..user{per_domain-1}`,
    aliases `info@` (-> user0, user1) and `postmaster@` (-> user0), and a
    catch-all `@domain{n}.example` (-> user0) when n is a multiple of 10.
    Alias domain n is `alias-{n}.example` -> domain n for the first tenth.
    """

    domains: int
    per_domain: int

    @property
    def mailboxes(self) -> int:
        return self.domains * self.per_domain

    @property
    def alias_domains(self) -> int:
        return max(self.domains // 10, 1)

    @property
    def catchalls(self) -> int:
        return len(range(0, self.domains, 10))

    @property
    def aliases(self) -> int:
        return 2 * self.domains + self.catchalls

    @staticmethod
    def domain(n: int) -> str:
        return f"domain{n}.example"

    @staticmethod
    def alias_domain(n: int) -> str:
        return f"alias-{n}.example"

    def mailbox(self, n: int, j: int) -> str:
        return f"user{j}@{self.domain(n)}"

    def alias_targets(self, local: str, n: int) -> str:
        if local == "info":
            return ",".join(self.mailbox(n, j) for j in range(min(2, self.per_domain)))
        return self.mailbox(n, 0)  # postmaster@ and the catch-all

    @staticmethod
    def has_catchall(n: int) -> bool:
        return n % 10 == 0


# ---------------------------------------------------------------- database plumbing


def root_connection(database: str | None = None, socket: str = "") -> Any:
    kwargs: dict[str, Any] = {"host": DB_HOST, "port": DB_PORT, "user": "root",
                              "charset": "utf8mb4", "autocommit": True}
    if socket:
        kwargs = {**kwargs, "host": "localhost", "unix_socket": socket}
    if database:
        kwargs["database"] = database
    return MySQLdb.connect(**kwargs)


def recreate_database() -> None:
    conn = root_connection()
    try:
        cur = conn.cursor()
        cur.execute(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
        cur.execute(f"CREATE DATABASE `{DB_NAME}` CHARACTER SET utf8mb4 "
                    "COLLATE utf8mb4_unicode_ci")
    finally:
        conn.close()


def create_read_only_user(password: str) -> None:
    """What an install grants the daemons: SELECT on the four tables they read."""
    conn = root_connection()
    try:
        cur = conn.cursor()
        for host in RO_HOSTS:
            cur.execute(f"DROP USER IF EXISTS '{RO_USER}'@'{host}'")
            cur.execute(f"CREATE USER '{RO_USER}'@'{host}' IDENTIFIED BY %s", [password])
            for table in DAEMON_TABLES:
                cur.execute(f"GRANT SELECT ON `{DB_NAME}`.`{table}` TO '{RO_USER}'@'{host}'")
    finally:
        conn.close()


def drop_everything() -> None:
    conn = root_connection()
    try:
        cur = conn.cursor()
        for host in RO_HOSTS:
            cur.execute(f"DROP USER IF EXISTS '{RO_USER}'@'{host}'")
        cur.execute(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
    finally:
        conn.close()


def sql_string(conn: Any, value: str) -> str:
    """`value` escaped for use inside the single quotes the queries already carry."""
    escaped: bytes = conn.escape_string(value.encode())
    return escaped.decode()


# ---------------------------------------------------------------- step 2: fixture load


def load_fixture(fixture: Fixture, password_hash: str) -> float:
    """Seconds to bulk-load the fixture.

    Loading fixture data is not a panel write, so it goes straight to the
    models with bulk_create instead of through domains.services (which would
    take hours for 200,000 audited, limit-checked creations).
    """
    from domains.models import Alias, AliasDomain, Domain, Mailbox

    started = time.perf_counter()
    domains = Domain.objects.bulk_create(
        [Domain(name=fixture.domain(n)) for n in range(fixture.domains)],
        batch_size=LOAD_BATCH,
    )
    ids = [d.pk for d in domains]
    if not all(ids):
        # A backend that cannot return bulk-inserted keys: read them back.
        by_name = dict(Domain.objects.values_list("name", "pk"))
        ids = [by_name[fixture.domain(n)] for n in range(fixture.domains)]

    mailboxes: list[Mailbox] = []
    for n in range(fixture.domains):
        for j in range(fixture.per_domain):
            mailboxes.append(Mailbox(domain_id=ids[n], email=fixture.mailbox(n, j),
                                     password=password_hash))
        if len(mailboxes) >= LOAD_BATCH:
            Mailbox.objects.bulk_create(mailboxes, batch_size=LOAD_BATCH)
            mailboxes = []
    Mailbox.objects.bulk_create(mailboxes, batch_size=LOAD_BATCH)

    aliases: list[Alias] = []
    for n in range(fixture.domains):
        for local in ("info", "postmaster"):
            aliases.append(Alias(domain_id=ids[n], source=f"{local}@{fixture.domain(n)}",
                                 destinations=fixture.alias_targets(local, n)))
        if fixture.has_catchall(n):
            aliases.append(Alias(domain_id=ids[n], source=f"@{fixture.domain(n)}",
                                 destinations=fixture.alias_targets("", n)))
    Alias.objects.bulk_create(aliases, batch_size=LOAD_BATCH)

    AliasDomain.objects.bulk_create(
        [AliasDomain(name=fixture.alias_domain(n), target_id=ids[n])
         for n in range(fixture.alias_domains)],
        batch_size=LOAD_BATCH,
    )
    return time.perf_counter() - started


# ---------------------------------------------------------------- lookup keys


# A key and the answer postmap must print for it (None: not found).
Key = tuple[str, str | None]


def map_seed(name: str) -> int:
    # Stable across runs, unlike hash(): the same keys every time.
    return zlib.crc32(name.encode())


class KeyMaker:
    """Deterministic hit/miss keys of the shape Postfix sends to each map."""

    def __init__(self, fixture: Fixture, seed: int = 1) -> None:
        self.f = fixture
        self.rng = random.Random(seed)

    def n(self) -> int:
        return self.rng.randrange(self.f.domains)

    def a(self) -> int:
        return self.rng.randrange(self.f.alias_domains)

    def j(self) -> int:
        return self.rng.randrange(self.f.per_domain)

    def missing_domain(self) -> str:
        return f"nowhere{self.rng.randrange(10**6)}.example"

    # Each generator returns one key; the map's key list mixes several.

    def mailbox(self) -> Key:
        address = self.f.mailbox(self.n(), self.j())
        return address, address

    def mailbox_miss(self) -> Key:
        return f"nobody{self.j()}@{self.f.domain(self.n())}", None

    def foreign_miss(self) -> Key:
        return f"user{self.j()}@{self.missing_domain()}", None

    def alias(self) -> Key:
        n, local = self.n(), self.rng.choice(["info", "postmaster"])
        return f"{local}@{self.f.domain(n)}", self.f.alias_targets(local, n)

    def catchall(self) -> Key:
        n = self.rng.randrange(0, self.f.domains, 10)
        return f"@{self.f.domain(n)}", self.f.alias_targets("", n)

    def catchall_miss(self) -> Key:
        n = self.n()
        while self.f.has_catchall(n):
            n = self.n()
        return f"@{self.f.domain(n)}", None

    def via_alias_domain(self) -> Key:
        n, j = self.a(), self.j()
        return f"user{j}@{self.f.alias_domain(n)}", self.f.mailbox(n, j)

    def via_alias_domain_miss(self) -> Key:
        return f"nobody@{self.f.alias_domain(self.a())}", None

    def alias_via_alias_domain(self) -> Key:
        n = self.a()
        return f"info@{self.f.alias_domain(n)}", self.f.alias_targets("info", n)

    def alias_domain_catchall(self) -> Key:
        n = self.a()
        answer = self.f.alias_targets("", n) if self.f.has_catchall(n) else None
        return f"@{self.f.alias_domain(n)}", answer

    def domain(self) -> Key:
        return self.f.domain(self.n()), "1"

    def alias_domain_name(self) -> Key:
        return self.f.alias_domain(self.a()), "1"

    def domain_miss(self) -> Key:
        return self.missing_domain(), None

    def mix(self, count: int, makers: list[tuple[Callable[[], Key], int]]) -> list[Key]:
        keys: list[Key] = []
        makers_only = [m for m, _ in makers]
        weights = [w for _, w in makers]
        for _ in range(count):
            keys.append(self.rng.choices(makers_only, weights)[0]())
        return keys

    def for_map(self, name: str, count: int) -> list[Key]:
        # Full addresses and @domain keys as Postfix sends them to each map:
        # mostly hits, with a fifth to a third of misses of every kind.
        if name == "domains.cf":
            return self.mix(count, [(self.domain, 6), (self.alias_domain_name, 2),
                                    (self.domain_miss, 2)])
        if name in ("mailboxes.cf", "mailbox-self.cf"):
            keys = self.mix(count, [(self.mailbox, 7), (self.mailbox_miss, 2),
                                    (self.foreign_miss, 1)])
            if name == "mailboxes.cf":  # answers 1, not the address
                return [(k, None if v is None else "1") for k, v in keys]
            return keys
        if name == "aliases.cf":
            return self.mix(count, [(self.alias, 6), (self.catchall, 1),
                                    (self.catchall_miss, 1), (self.mailbox_miss, 2)])
        if name == "aliasdomain-mailboxes.cf":
            return self.mix(count, [(self.via_alias_domain, 7), (self.via_alias_domain_miss, 2),
                                    (lambda: (self.mailbox()[0], None), 1)])
        if name == "aliasdomain-aliases.cf":
            return self.mix(count, [(self.alias_via_alias_domain, 7),
                                    (lambda: (self.via_alias_domain()[0], None), 3)])
        if name == "aliasdomain-catchall.cf":
            return self.mix(count, [(self.alias_domain_catchall, 6),
                                    (lambda: (self.via_alias_domain()[0], None), 2),
                                    (lambda: (self.catchall()[0], None), 2)])
        if name == "sender-login.cf":
            # `@domain` keys: the map's %u suppresses the whole query, so a
            # catch-all grants nobody the right to send as anything.
            return self.mix(count, [(self.mailbox, 5), (self.alias, 2),
                                    (lambda: (self.via_alias_domain()[0], None), 1),
                                    (lambda: (self.catchall()[0], None), 1),
                                    (self.mailbox_miss, 1)])
        if name == "aliasdomain-sender-login.cf":
            return self.mix(count, [(self.via_alias_domain, 5),
                                    (self.alias_via_alias_domain, 3),
                                    (lambda: (self.mailbox()[0], None), 1),
                                    (self.via_alias_domain_miss, 1)])
        raise ValueError(f"no keys for {name}")

    def dovecot(self, count: int) -> list[Key]:
        return self.mix(count, [(self.mailbox, 8), (self.mailbox_miss, 2)])


# ---------------------------------------------------------------- step 4: postmap


@dataclass
class PostmapResult:
    map: str
    keys: int
    found: int
    expected_found: int
    wrong: int
    seconds: float
    examples_wrong: list[str]

    @property
    def per_second(self) -> float:
        return self.keys / self.seconds

    @property
    def mean_ms(self) -> float:
        return self.seconds / self.keys * 1000


def run_postmap(config_dir: Path, map_name: str, keys: list[Key]) -> PostmapResult:
    """All keys through ONE postmap process: one connection for every lookup, as a
    running Postfix daemon keeps its map connection open.

    The time includes starting postmap and connecting to MariaDB once.
    """
    map_file = config_dir / "mailadmin" / map_name
    stdin = "".join(f"{key}\n" for key, _ in keys)
    started = time.perf_counter()
    result = subprocess.run(
        [POSTMAP, "-c", str(config_dir), "-q", "-", f"mysql:{map_file}"],
        input=stdin, capture_output=True, text=True, timeout=600, check=False,
    )
    seconds = time.perf_counter() - started
    # With `-q -` postmap exits 1 only when no key at all was found; any other
    # status, or a warning/fatal on stderr, means the map itself is broken.
    if result.returncode not in (0, 1) or "fatal" in result.stderr or "warning" in result.stderr:
        raise RuntimeError(f"postmap {map_name} exited {result.returncode}:\n{result.stderr}")
    answers: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition("\t")
        answers[key] = value
    wrong = [f"{key}: expected {expected!r}, got {answers.get(key)!r}"
             for key, expected in keys if answers.get(key) != expected]
    return PostmapResult(
        map=map_name, keys=len(keys), found=sum(1 for k, _ in keys if k in answers),
        expected_found=sum(1 for _, v in keys if v is not None), wrong=len(wrong),
        seconds=seconds, examples_wrong=wrong[:5],
    )


def spot_checks(config_dir: Path, fixture: Fixture) -> tuple[list[str], int]:
    """A few hand-picked answers, one postmap -q per key, as the tests ask them.

    Returns the wrong answers and the number of keys checked.
    """
    f = fixture
    # alias-17 when there are that many alias domains; catch-alls sit on every
    # tenth domain, so alias-10 (or alias-0) reaches one.
    a = 17 % f.alias_domains
    c = 10 if f.alias_domains > 10 else 0
    cases: list[tuple[str, str, str | None]] = [
        ("mailbox-self.cf", f.mailbox(17, 3), f.mailbox(17, 3)),
        ("mailboxes.cf", f.mailbox(17, 3), "1"),
        ("mailboxes.cf", f"nobody@{f.domain(17)}", None),
        ("domains.cf", f.alias_domain(a), "1"),
        ("aliases.cf", f"info@{f.domain(17)}", f.alias_targets("info", 17)),
        ("aliasdomain-mailboxes.cf", f"user3@{f.alias_domain(a)}", f.mailbox(a, 3)),
        ("aliasdomain-mailboxes.cf", f"@{f.alias_domain(a)}", None),
        ("aliasdomain-catchall.cf", f"@{f.alias_domain(c)}", f.alias_targets("", c)),
        ("aliasdomain-catchall.cf", f"user3@{f.alias_domain(c)}", None),
        ("aliasdomain-sender-login.cf", f"info@{f.alias_domain(a)}",
         f.alias_targets("info", a)),
        ("sender-login.cf", f"@{f.domain(10)}", None),
    ]
    failures: list[str] = []
    for map_name, key, expected in cases:
        result = subprocess.run(
            [POSTMAP, "-c", str(config_dir), "-q", key, f"mysql:{config_dir}/mailadmin/{map_name}"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        got = result.stdout.strip() if result.returncode == 0 else None
        if got != expected:
            failures.append(f"{map_name} {key}: expected {expected!r}, got {got!r} "
                            f"{result.stderr.strip()}")
    return failures, len(cases)


# ---------------------------------------------------------------- step 5: queries


def postfix_fill(query: str, key: str, quote: Callable[[str], str]) -> str | None:
    """The SQL Postfix sends for `key`, or None where Postfix suppresses the query.

    Postfix skips a query that uses %u for a key with an empty local part
    (`@domain`), and one that uses %d for a key without a domain.
    """
    local, at, domain = key.rpartition("@")
    if not at:
        local, domain = key, ""
    if ("%u" in query and not local) or ("%d" in query and not at):
        return None
    values = {"s": key, "u": local, "d": domain}
    return re.sub(r"%([sud])", lambda m: quote(values[m.group(1)]), query)


def dovecot_fill(query: str, user: str, quote: Callable[[str], str]) -> str:
    local, _, domain = user.rpartition("@")
    values = {"u": user, "n": local, "d": domain}
    return re.sub(r"%([und])", lambda m: quote(values[m.group(1)]), query)


@dataclass
class QueryResult:
    daemon: str
    name: str
    sql_example: str
    plan: list[dict[str, Any]]  # for a key that is found
    miss_plan: list[dict[str, Any]]  # for one that is not
    server: ServerTime  # over the first ANALYZE_RUNS statements
    scans: list[str]
    runs: int
    timing: Timing

    @property
    def mean_ms(self) -> float:
        return self.timing.mean_ms

    @property
    def goal_ms(self) -> float:
        if self.daemon == "postfix" and self.name in ALIAS_SPLIT_MAPS:
            return ALIAS_QUERY_GOAL_MS
        return QUERY_GOAL_MS

    @property
    def ok(self) -> bool:
        return not self.scans and self.mean_ms < self.goal_ms


def explain(cur: Any, sql: str) -> list[dict[str, Any]]:
    cur.execute("EXPLAIN " + sql)
    columns = [c[0] for c in cur.description]
    rows = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    return [{"id": r.get("id"), "select_type": r.get("select_type"), "table": r.get("table"),
             "type": r.get("type"), "key": r.get("key"), "ref": r.get("ref"),
             "rows": r.get("rows"), "extra": r.get("Extra")} for r in rows]


@dataclass(frozen=True)
class ServerTime:
    """MariaDB's own account of a query (ANALYZE FORMAT=JSON), averaged over runs.

    Const tables are read while optimizing, so for these lookups most of the
    server's work shows up as optimization time, not execution time.
    """

    runs: int
    optimize_ms: float
    execute_ms: float
    pages: float  # InnoDB pages touched per query
    tables: list[dict[str, Any]]


def analyze(cur: Any, statements: list[str]) -> ServerTime:
    optimize: list[float] = []
    execute: list[float] = []
    pages: list[int] = []
    tables: list[dict[str, Any]] = []
    for sql in statements:
        cur.execute("ANALYZE FORMAT=JSON " + sql)
        document = json.loads(cur.fetchone()[0])
        optimize.append(float(document.get("query_optimization", {}).get("r_total_time_ms", 0)))
        found: list[dict[str, Any]] = []
        block_ms: list[float] = []
        _walk_analyze(document, found, block_ms)
        execute.append(sum(block_ms))
        pages.append(sum(int(t.get("r_engine_stats", {}).get("pages_accessed", 0))
                         for t in found))
        if not tables:
            tables = [{k: t.get(k) for k in ("table_name", "access_type", "key", "r_rows")}
                      for t in found]
    return ServerTime(runs=len(statements), optimize_ms=statistics.fmean(optimize),
                      execute_ms=statistics.fmean(execute), pages=statistics.fmean(pages),
                      tables=tables)


def _walk_analyze(node: Any, tables: list[dict[str, Any]], block_ms: list[float]) -> None:
    if isinstance(node, dict):
        block = node.get("query_block")
        if isinstance(block, dict) and "r_total_time_ms" in block:
            block_ms.append(float(block["r_total_time_ms"]))
        table = node.get("table")
        if isinstance(table, dict) and "table_name" in table:
            tables.append(table)
        for value in node.values():
            _walk_analyze(value, tables, block_ms)
    elif isinstance(node, list):
        for value in node:
            _walk_analyze(value, tables, block_ms)


def measure_queries(fixture: Fixture, count: int, socket: str = ""
                    ) -> tuple[list[QueryResult], Timing]:
    """EXPLAIN, ANALYZE and time every daemon lookup query on one root connection.

    Returns the results and the timing of `SELECT 1`, the round-trip floor.
    """
    from mailhost.models import MailHost
    from mailhost.render import dovecot_queries, postfix_queries
    from mailhost.seed import fields_from_settings

    host = MailHost(**fields_from_settings())  # the layout only: no row needed

    conn = root_connection(DB_NAME, socket)
    cur = conn.cursor()

    def quote(value: str) -> str:
        return sql_string(conn, value)

    # (daemon, query name, [(sql, is_hit)]): `count` statements each, skipping
    # the keys for which Postfix would not send the query at all.
    cases: list[tuple[str, str, list[tuple[str, bool]]]] = []
    for name, query in postfix_queries("mysql").items():
        keys = KeyMaker(fixture, seed=map_seed(name)).for_map(name, 2 * count)
        filled = [(sql, answer is not None) for key, answer in keys
                  if (sql := postfix_fill(query, key, quote))]
        cases.append(("postfix", name, filled[:count]))
    for name, query in dovecot_queries("mysql", host).items():
        if name == "iterate_query":
            continue  # a full listing of every user by design (doveadm -A)
        users = KeyMaker(fixture, seed=map_seed(name)).dovecot(count)
        cases.append(("dovecot", name, [(dovecot_fill(query, user, quote), answer is not None)
                                        for user, answer in users]))

    results: list[QueryResult] = []
    try:
        floor = time_statements(cur, ["SELECT 1"] * count)
        for daemon, name, statements in cases:
            hit = next(sql for sql, is_hit in statements if is_hit)
            miss = next(sql for sql, is_hit in statements if not is_hit)
            plan, miss_plan = explain(cur, hit), explain(cur, miss)
            # The alias maps split one row's destination list with JSON_TABLE:
            # reading that list (type ALL, "Table function: json_table") is
            # not a table scan. Every real table must still be const/eq_ref.
            scans = [f"{row['table']}: type={row['type']} rows={row['rows']}"
                     for row in plan + miss_plan if row["type"] in SCAN_TYPES
                     and "Table function" not in str(row["extra"] or "")]
            results.append(QueryResult(
                daemon=daemon, name=name, sql_example=hit, plan=plan, miss_plan=miss_plan,
                server=analyze(cur, [sql for sql, _ in statements[:ANALYZE_RUNS]]),
                scans=scans, runs=len(statements),
                timing=time_statements(cur, [sql for sql, _ in statements]),
            ))
    finally:
        conn.close()
    return results, floor


@dataclass(frozen=True)
class Timing:
    mean_ms: float
    median_ms: float
    p99_ms: float


def time_statements(cur: Any, statements: list[str]) -> Timing:
    """Per-statement round trips, result rows fetched, on one connection.

    The median is reported next to the mean because this machine is shared:
    a few preempted round trips move the mean but not the median.
    """
    times: list[float] = []
    for sql in statements:
        started = time.perf_counter()
        cur.execute(sql)
        cur.fetchall()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return Timing(mean_ms=statistics.fmean(times), median_ms=statistics.median(times),
                  p99_ms=times[min(len(times) - 1, int(len(times) * 0.99))])


# ---------------------------------------------------------------- step 6: import


@dataclass
class ImportResult:
    mailboxes: int
    seconds: float
    queries: int
    sql_seconds: float
    profile_top: str

    @property
    def per_second(self) -> float:
        return self.mailboxes / self.seconds


@contextmanager
def counting_queries() -> Iterator[list[float]]:
    """Durations of every SQL statement run inside the block."""
    from django.db import connection

    durations: list[float] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            durations.append(time.perf_counter() - started)

    with connection.execute_wrapper(wrapper):
        yield durations


def run_import(domain_name: str, count: int, password_hash: str) -> tuple[float, list[float]]:
    from domains import services

    domain = services.create_domain(actor="bench", name=domain_name)
    rows = [services.MailboxImport(email=f"user{i}@{domain_name}", password_hash=password_hash)
            for i in range(count)]
    with counting_queries() as durations:
        started = time.perf_counter()
        created = services.import_mailboxes(actor="bench", domain=domain, rows=rows)
        seconds = time.perf_counter() - started
    if len(created) != count:
        raise RuntimeError(f"import created {len(created)} of {count} mailboxes")
    return seconds, durations


def measure_import(count: int, password_hash: str, force_profile: bool) -> ImportResult:
    seconds, durations = run_import(IMPORT_DOMAIN, count, password_hash)
    profile_top = ""
    if force_profile or seconds > IMPORT_GOAL_S:
        # A second import into a fresh domain under cProfile; the timed run
        # above stays free of profiler overhead.
        profiler = cProfile.Profile()
        profiler.enable()
        run_import(PROFILE_DOMAIN, count, password_hash)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(15)
        profile_top = out.getvalue()
    return ImportResult(mailboxes=count, seconds=seconds, queries=len(durations),
                        sql_seconds=sum(durations), profile_top=profile_top)


# ---------------------------------------------------------------- report


def print_plans(results: list[QueryResult]) -> None:
    for r in results:
        verdict = "FAIL (scan)" if r.scans else "ok" if r.ok else "FAIL (slow)"
        print(f"\n{r.daemon} {r.name}: {verdict}, {r.mean_ms:.3f} ms mean over {r.runs}; "
              f"server (ANALYZE, {r.server.runs} runs): optimize {r.server.optimize_ms:.3f} ms, "
              f"execute {r.server.execute_ms:.3f} ms, {r.server.pages:.1f} pages")
        for label, plan in (("hit", r.plan), ("miss", r.miss_plan)):
            for row in plan:
                print(f"  {label:<4} {row['select_type']!s:<8} {row['table']!s:<6} "
                      f"type={row['type']!s:<7} key={row['key']!s:<22} "
                      f"rows={row['rows']!s:<5} {row['extra'] or ''}")
        for scan in r.scans:
            print(f"    FAIL scan: {scan}")


def summary_lines(load_s: float, fixture: Fixture, postmaps: list[PostmapResult],
                  queries: list[QueryResult], floor: Timing,
                  imported: ImportResult | None, socket: str = "") -> list[str]:
    lines = [
        f"fixture: {fixture.domains} domains, {fixture.mailboxes} mailboxes, "
        f"{fixture.aliases} aliases, {fixture.alias_domains} alias domains; "
        f"loaded in {load_s:.1f} s",
        "",
        f"{'postmap map':<26}{'keys':>6}{'found':>7}{'wrong':>7}{'seconds':>9}"
        f"{'lookups/s':>11}{'ms/lookup':>11}",
    ]
    for p in postmaps:
        lines.append(f"{p.map:<26}{p.keys:>6}{p.found:>7}{p.wrong:>7}{p.seconds:>9.3f}"
                     f"{p.per_second:>11.0f}{p.mean_ms:>11.3f}")
    lines += [
        "(one postmap process per map; the time includes its start and connection)",
        "",
        f"{'query':<34}{'runs':>6}{'mean ms':>9}{'median':>8}{'p99':>7}{'optim':>7}"
        f"{'exec':>7}{'scan':>6}  verdict",
    ]
    for q in queries:
        t = q.timing
        lines.append(f"{q.daemon + ' ' + q.name:<34}{q.runs:>6}{t.mean_ms:>9.3f}"
                     f"{t.median_ms:>8.3f}{t.p99_ms:>7.3f}{q.server.optimize_ms:>7.3f}"
                     f"{q.server.execute_ms:>7.3f}{'yes' if q.scans else 'no':>6}  "
                     f"{'ok' if q.ok else 'FAIL'}")
    lines.append(f"{'SELECT 1 (round-trip floor)':<34}{q.runs:>6}{floor.mean_ms:>9.3f}"
                 f"{floor.median_ms:>8.3f}{floor.p99_ms:>7.3f}")
    lines.append(f"(goal: mean < {QUERY_GOAL_MS} ms, < {ALIAS_QUERY_GOAL_MS} ms for "
                 f"{', '.join(sorted(ALIAS_SPLIT_MAPS))} (they check each destination), "
                 "and no ALL/index scan in the hit or miss "
                 f"plan; one root connection over {'the unix socket' if socket else 'TCP loopback'}"
                 "; optim/exec: server-side ms "
                 f"from ANALYZE over {ANALYZE_RUNS} runs)")
    if imported:
        verdict = "ok" if imported.seconds < IMPORT_GOAL_S else "FAIL"
        lines += [
            "",
            f"import: {imported.mailboxes} mailboxes in {imported.seconds:.1f} s "
            f"({imported.per_second:.0f}/s; goal < {IMPORT_GOAL_S:.0f} s: {verdict}); "
            f"{imported.queries} SQL statements, {imported.sql_seconds:.1f} s of it in SQL",
        ]
    return lines


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews timings."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--mailboxes", type=int, default=200_000,
                        help="spread evenly over the domains")
    parser.add_argument("--import", dest="import_count", type=int, default=100_000,
                        help="mailboxes to import through the service layer (0: skip)")
    parser.add_argument("--keys", type=int, default=2000, help="lookups per map and query")
    parser.add_argument("--database", default=DB_NAME,
                        help="MariaDB database to create and drop (never a real one); "
                             "the read-only user is named after it, with _ro")
    parser.add_argument("--label", default="", help="added to the results file's name")
    parser.add_argument("--socket", default="",
                        help="render the maps for MariaDB's unix socket (e.g. "
                             "/run/mysqld/mysqld.sock) instead of TCP on 127.0.0.1")
    parser.add_argument("--profile-import", action="store_true",
                        help="profile the import even when it meets its goal")
    args = parser.parse_args(argv)
    if args.domains < 20 or args.mailboxes < 2 * args.domains:
        parser.error("need at least 20 domains and 2 mailboxes per domain")
    return args


def setup_django(data_dir: Path, config_dir: Path, database_url: str = "") -> None:
    os.environ["MAILADMIN_DATABASE_URL"] = (
        database_url or f"mysql://root@{DB_HOST}:{DB_PORT}/{DB_NAME}")
    os.environ["MAILADMIN_DATA_DIR"] = str(data_dir)
    # The rendered main.cf then names the map files this run actually uses.
    os.environ["MAILADMIN_POSTFIX_DIR"] = str(config_dir / "postfix")
    os.environ["MAILADMIN_DOVECOT_DIR"] = str(config_dir / "dovecot")
    # Only the rendered maps are used; render_config refuses TLS paths that
    # do not exist, and a fresh machine has no snakeoil pair.
    config_dir.mkdir(parents=True, exist_ok=True)
    unused_tls = config_dir / "unused-tls.pem"
    unused_tls.touch()
    os.environ["MAILADMIN_TLS_CERT"] = os.environ["MAILADMIN_TLS_KEY"] = str(unused_tls)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailadmin.settings")
    if str(PROJECT) not in sys.path:
        sys.path.insert(0, str(PROJECT))
    import django

    django.setup()


def main(argv: list[str] | None = None) -> int:
    global DB_NAME, RO_USER
    args = parse_args(argv)
    DB_NAME, RO_USER = args.database, f"{args.database}_ro"
    fixture = Fixture(domains=args.domains, per_domain=args.mailboxes // args.domains)
    from passlib.hash import bcrypt

    # One cheap hash for every row: hashing is not what is measured here.
    password_hash = "{BLF-CRYPT}" + bcrypt.using(ident="2y", rounds=4).hash("bench-password")
    workdir = Path(tempfile.mkdtemp(prefix="mailadmin-bench-"))
    config_dir = workdir / "etc"
    ro_password = secrets.token_hex(16)
    started_at = datetime.datetime.now(datetime.UTC)
    load_before = load_average()
    try:
        recreate_database()
        setup_django(workdir / "data", config_dir)
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        print(f"loading {fixture.domains} domains, {fixture.mailboxes} mailboxes ...",
              flush=True)
        load_s = load_fixture(fixture, password_hash)
        print(f"loaded in {load_s:.1f} s", flush=True)

        create_read_only_user(ro_password)
        via = f"?socket={args.socket}" if args.socket else ""
        call_command("render_config", out=str(config_dir), stdout=io.StringIO(),
                     database_url=f"mysql://{RO_USER}:{ro_password}@{DB_HOST}:{DB_PORT}/"
                                  f"{DB_NAME}{via}")
        postfix_dir = config_dir / "postfix"

        failures, checked = spot_checks(postfix_dir, fixture)
        print(f"spot checks: {checked - len(failures)} of {checked} answers right")
        for failure in failures:
            print(f"WRONG ANSWER: {failure}")
        postmaps: list[PostmapResult] = []
        for name in POSTMAP_MAPS:
            keys = KeyMaker(fixture, seed=map_seed(name)).for_map(name, args.keys)
            result = run_postmap(postfix_dir, name, keys)
            postmaps.append(result)
            print(f"postmap {name}: {result.per_second:.0f} lookups/s, "
                  f"{result.mean_ms:.3f} ms/lookup, {result.wrong} wrong", flush=True)
            for example in result.examples_wrong:
                print(f"    WRONG {example}")

        queries, floor = measure_queries(fixture, args.keys, args.socket)
        print_plans(queries)

        imported: ImportResult | None = None
        if args.import_count:
            print(f"\nimporting {args.import_count} mailboxes through services ...",
                  flush=True)
            imported = measure_import(args.import_count, password_hash, args.profile_import)
            if imported.profile_top:
                print(imported.profile_top)
        connection.close()

        lines = summary_lines(load_s, fixture, postmaps, queries, floor, imported, args.socket)
        load_after = load_average()
        lines.append(f"load average before {load_before}, after {load_after} "
                     f"({os.cpu_count()} CPUs)")
        print("\n" + "\n".join(lines))
        label = ("-socket" if args.socket else "") + (f"-{args.label}" if args.label else "")
        out = RESULTS_DIR / f"lookups-{started_at:%Y-%m-%d}{label}.json"
        write_json(out, {
            "started": started_at.isoformat(),
            "arguments": vars(args),
            "load_average_before": load_before, "load_average_after": load_after,
            "cpus": os.cpu_count(),
            "fixture": {"domains": fixture.domains, "mailboxes": fixture.mailboxes,
                        "aliases": fixture.aliases, "alias_domains": fixture.alias_domains,
                        "load_seconds": load_s},
            "spot_check_failures": failures,
            "postmap": [{**vars(p), "lookups_per_second": p.per_second,
                         "mean_ms": p.mean_ms} for p in postmaps],
            "select_1_floor": asdict(floor),
            "query_goal_ms": QUERY_GOAL_MS,
            "alias_query_goal_ms": ALIAS_QUERY_GOAL_MS,
            "queries": [{**asdict(q), "goal_ms": q.goal_ms, "ok": q.ok} for q in queries],
            "import": None if imported is None else {
                **vars(imported), "mailboxes_per_second": imported.per_second,
                "goal_seconds": IMPORT_GOAL_S},
            "summary": lines,
        })
        print(f"\nwritten to {out.relative_to(PROJECT)}")
        bad = (failures or any(p.wrong for p in postmaps) or not all(q.ok for q in queries)
               or (imported is not None and imported.seconds >= IMPORT_GOAL_S))
        return 1 if bad else 0
    finally:
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        drop_everything()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
