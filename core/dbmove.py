"""Copy the panel's database, table by table, into an empty MariaDB database.

`manage.py move_database` (mailhost) runs it; it is here, beside the other
database plumbing (core/env.py), because it reads every app's tables
through the app registry and imports none of them.

Why a table-by-table copy and not `dumpdata`/`loaddata`:

- memory: `loaddata` parses a JSON fixture whole before it writes a row (a
  panel at 200,000 mailboxes, with their audit rows, is a fixture of hundreds
  of MB), and JSON Lines, which it would stream, it still saves one
  `Model.save_base()` at a time: one INSERT a row, signals included;
- keys: the target's migrate makes its own content types and permissions,
  whose ids need not be the source's; `dumpdata --natural-foreign` remaps
  them, but every table that names a content type or a permission by id
  would then have to go through the same remapping. Emptying what migrate
  seeded (content types, permissions, the mail host row) and copying those
  tables like every other one keeps every primary key and every reference;
- fidelity: no model code runs. Each value is read as Django reads it
  (`values_list`: JSON decoded, datetimes as aware UTC) and written as
  Django writes it to MariaDB (`get_db_prep_save`), without `pre_save`, so
  `auto_now` columns keep their stored times (`bulk_create` would stamp them
  with now) and password hashes are the same bytes.

Each table is read in primary-key order through the ORM's streaming iterator
(SQLite's `fetchmany`) and written in multi-row INSERTs of at most
BATCH_ROWS rows or about BATCH_BYTES: memory holds one batch whatever the
size of the panel. The whole copy is one transaction on the target, checked
(row counts, table by table) before it commits; anything that fails rolls it
back and drops the tables this run created, so the target is left as it was
found. The source is read inside one SQLite write transaction (the panel's
IMMEDIATE mode), so the panel cannot change a row half-way through the copy,
while Postfix and Dovecot go on reading it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.utils import load_backend

from core.env import database_from_url

TARGET = "move_target"
BATCH_ROWS = 1000
# Well under MariaDB's max_allowed_packet (16 MB by default): an import job's
# rows or an audit row's before/after can be large.
BATCH_BYTES = 4 * 1024 * 1024
# What migrate itself writes into a new database; replaced by the source's rows.
SEEDED = frozenset({"django_content_type", "auth_permission", "mailhost_mailhost"})
# Not copied, with the reason the command gives. Sessions are signed-in
# browsers of a panel that is stopped for the move: short-lived, and the one
# thing whose loss costs nothing but a sign-in. Tables whose rows point at a
# skipped table (a session's sign-in row) are skipped with it.
SKIPPED = {"django_session": "sessions: everyone signs in again after the move"}
MIGRATE_SECONDS = 600


class MoveError(Exception):
    """A refusal or a failure, in one line; the target is as it was found."""


@dataclass(frozen=True)
class Table:
    name: str
    model: type[models.Model]
    self_referencing: bool


@dataclass
class Moved:
    counts: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)
    seconds: float = 0.0


def target_url(url: str, password: str | None) -> str:
    """`url` with `password` put in (percent-encoded), for migrate's process."""
    parts = urlsplit(url)
    if password is None or parts.password is not None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def shown_url(url: str) -> str:
    """`url` as it may be printed: any password as PASSWORD."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:PASSWORD@{host}"))


def target_entry(url: str) -> dict[str, Any]:
    try:
        entry = database_from_url(url)
    except (ImproperlyConfigured, ValueError) as exc:
        raise MoveError(str(exc)) from None
    if not entry["ENGINE"].endswith("mysql"):
        raise MoveError(f"{shown_url(url)}: the target must be a mysql:// URL (MariaDB)")
    # One long transaction: no connection kept past it.
    return {**entry, "CONN_MAX_AGE": 0}


def panel_tables() -> tuple[list[Table], list[tuple[str, str]]]:
    """Every table of an installed model, parents before the tables that point at
    them, and the skipped ones with their reason."""
    by_table: dict[str, type[models.Model]] = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.managed and not meta.proxy and not meta.swapped:
            by_table.setdefault(meta.db_table, model)
    skipped = dict(SKIPPED)
    refs = {
        name: {
            f.related_model._meta.db_table
            for f in model._meta.local_concrete_fields
            if f.is_relation and f.related_model is not None
        }
        for name, model in by_table.items()
    }
    changed = True
    while changed:
        changed = False
        for name, parents in refs.items():
            gone = sorted(parents & skipped.keys())
            if name not in skipped and gone:
                skipped[name] = f"rows of {gone[0]}, skipped with it"
                changed = True
    ordered: list[Table] = []
    placed: set[str] = set()
    todo = sorted(name for name in by_table if name not in skipped)
    while todo:
        ready = [n for n in todo if refs[n] - {n} <= placed]
        if not ready:
            raise MoveError(f"the tables {', '.join(todo)} point at each other in a circle")
        for name in ready:
            ordered.append(Table(name, by_table[name], name in refs[name]))
            placed.add(name)
        todo = [n for n in todo if n not in placed]
    return ordered, sorted(skipped.items())


def _quoted(db: BaseDatabaseWrapper, name: str) -> str:
    return db.ops.quote_name(name)


def _count(db: BaseDatabaseWrapper, table: str) -> int:
    with db.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {_quoted(db, table)}")  # noqa: S608
        return int(cursor.fetchone()[0])


def _reason(exc: BaseException) -> str:
    """A database error in one line: MySQLdb's (code, message) as `message (code)`."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) == 2 and isinstance(args[0], int):
        return f"{args[1]} ({args[0]})"
    return " ".join(str(exc).split()) or type(exc).__name__


# ------------------------------------------------------------------ checks


def check_source() -> BaseDatabaseWrapper:
    source = connections[DEFAULT_DB_ALIAS]
    if source.vendor != "sqlite":
        raise MoveError(
            f"the panel's database is already {source.display_name}: "
            "move_database moves the embedded SQLite default"
        )
    executor = MigrationExecutor(source)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        raise MoveError(
            f"the SQLite database has {len(pending)} unapplied migrations: "
            "run manage.py migrate first"
        )
    return source


def connect_target(entry: dict[str, Any]) -> BaseDatabaseWrapper:
    """A connection of its own, outside `django.db.connections`: nothing else
    in the process (nor a test's isolation) gets to use the target."""
    entry = connections.configure_settings({DEFAULT_DB_ALIAS: {}, TARGET: dict(entry)})[TARGET]
    target: BaseDatabaseWrapper = load_backend(entry["ENGINE"]).DatabaseWrapper(entry, TARGET)
    where = f"{entry['USER'] or '(no user)'}@{entry['HOST']}:{entry['PORT']}/{entry['NAME']}"
    try:
        target.ensure_connection()
    except DatabaseError as exc:
        cause = exc.__cause__ or exc
        if getattr(cause, "args", (0,))[0] == 1049:
            raise MoveError(
                f"the database {entry['NAME']} does not exist on "
                f"{entry['HOST']}:{entry['PORT']}: create it first "
                "(README, Moving to MariaDB)"
            ) from None
        raise MoveError(f"cannot connect to {where}: {_reason(cause)}") from None
    with target.cursor() as cursor:
        cursor.execute(
            "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
            "WHERE SCHEMA_NAME = %s",
            [entry["NAME"]],
        )
        (charset,) = cursor.fetchone()
    if charset != "utf8mb4":
        target.close()
        raise MoveError(
            f"the database {entry['NAME']} has character set {charset}: create it "
            "with CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    return target


def check_empty(
    target: BaseDatabaseWrapper, tables: list[Table], skipped: list[tuple[str, str]]
) -> set[str]:
    """The target's tables; refuses a target where any panel table holds a row
    migrate did not put there itself."""
    existing = set(target.introspection.table_names())
    holding = []
    for name in [t.name for t in tables] + [name for name, _ in skipped]:
        if name in existing and name not in SEEDED:
            with target.cursor() as cursor:
                cursor.execute(f"SELECT 1 FROM {_quoted(target, name)} LIMIT 1")  # noqa: S608
                if cursor.fetchone():
                    holding.append(name)
    if holding:
        more = f" and {len(holding) - 3} more" if len(holding) > 3 else ""
        raise MoveError(
            f"the target database {target.settings_dict['NAME']} is not empty "
            f"({', '.join(holding[:3])}{more} hold rows): move_database copies "
            "into an empty database only"
        )
    return existing


def migrate_in_own_process(url: str) -> None:
    """`manage.py migrate` with the target as the default database.

    Its own process, not `migrate --database`: the data migrations write
    through `Model.objects` on the default database, which here is the SQLite
    being moved (0002 of apppasswords would revoke its live app passwords).
    """
    env = {**os.environ, "MAILADMIN_DATABASE_URL": url}
    manage = Path(settings.BASE_DIR) / "manage.py"
    try:
        done = subprocess.run(
            [sys.executable, str(manage), "migrate", "--no-input"],
            env=env,
            capture_output=True,
            text=True,
            timeout=MIGRATE_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise MoveError(f"migrating the target took over {MIGRATE_SECONDS} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise MoveError(
            "migrating the target failed: "
            + (lines[-1].strip() if lines else f"exit status {done.returncode}")
        )


# ------------------------------------------------------------------ the copy


def _rows(table: Table, chunk: int) -> Iterator[tuple[Any, ...]]:
    names = [f.attname for f in table.model._meta.local_concrete_fields]
    query = table.model._base_manager.using(DEFAULT_DB_ALIAS).order_by("pk").values_list(*names)
    return query.iterator(chunk_size=chunk)


def _size(row: tuple[Any, ...]) -> int:
    return sum(len(v) if isinstance(v, (str, bytes)) else 8 for v in row)


def _insert(
    target: BaseDatabaseWrapper, table: Table, sql: str, batch: list[tuple[Any, ...]]
) -> None:
    """One multi-row INSERT; on an error, the row that causes it, by its key.

    A refused statement is undone alone (InnoDB), so the rows can be tried one
    by one; the transaction is rolled back whole afterwards anyway."""
    try:
        with target.cursor() as cursor:
            cursor.executemany(sql, batch)
    except DatabaseError as exc:
        pk_at = [f.attname for f in table.model._meta.local_concrete_fields].index(
            table.model._meta.pk.attname
        )
        for row in batch:
            try:
                with target.cursor() as cursor:
                    cursor.execute(sql, row)
            except DatabaseError as row_exc:
                raise MoveError(
                    f"{table.name}, row {row[pk_at]!r}: {_reason(row_exc.__cause__ or row_exc)}"
                ) from None
        raise MoveError(f"{table.name}: {_reason(exc.__cause__ or exc)}") from None


def copy_table(target: BaseDatabaseWrapper, table: Table) -> int:
    fields = table.model._meta.local_concrete_fields
    columns = ", ".join(_quoted(target, str(f.column)) for f in fields)
    sql = (
        f"INSERT INTO {_quoted(target, table.name)} ({columns}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    prepare = [partial(f.get_db_prep_save, connection=target) for f in fields]
    copied, batch, size = 0, [], 0
    for row in _rows(table, BATCH_ROWS):
        values = tuple(p(v) for p, v in zip(prepare, row, strict=True))
        batch.append(values)
        size += _size(values)
        if len(batch) >= BATCH_ROWS or size >= BATCH_BYTES:
            _insert(target, table, sql, batch)
            copied += len(batch)
            batch, size = [], 0
    if batch:
        _insert(target, table, sql, batch)
        copied += len(batch)
    return copied


def left_behind(
    source: BaseDatabaseWrapper, tables: list[Table], skipped: list[tuple[str, str]]
) -> list[str]:
    """Tables and columns in the source that no model names (an adopted
    database's own columns, a table of an app no longer installed)."""
    known = {t.name: t for t in tables}
    ignored = {name for name, _ in skipped} | {"django_migrations", "sqlite_stat1"}
    found = []
    with source.cursor() as cursor:
        for name in source.introspection.table_names(cursor):
            if name in ignored:
                continue
            if name not in known:
                found.append(f"table {name}")
                continue
            modelled = {f.column for f in known[name].model._meta.local_concrete_fields}
            found += [
                f"column {name}.{col.name}"
                for col in source.introspection.get_table_description(cursor, name)
                if col.name not in modelled
            ]
    return found


def _copy_all(
    source: BaseDatabaseWrapper,
    target: BaseDatabaseWrapper,
    tables: list[Table],
    progress: Callable[[str], None],
) -> list[tuple[str, int]]:
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        _keep_sequences(source, target, tables)
        target.set_autocommit(False)
        try:
            counts = _copy_tables(source, target, tables, progress)
            target.commit()
        except BaseException:
            with contextlib.suppress(DatabaseError):
                target.rollback()
            raise
        finally:
            with contextlib.suppress(DatabaseError):
                target.set_autocommit(True)
    return counts


def _keep_sequences(
    source: BaseDatabaseWrapper, target: BaseDatabaseWrapper, tables: list[Table]
) -> None:
    """The next id of each table as SQLite would give it, which may be above the
    highest id left: a deleted domain's id is never given again, and must not
    be, since audit rows name domains by id (`domain_ref`) and would open the
    old domain's history to a new one's admins.

    DDL, so before the copy's transaction (MariaDB commits at an ALTER); an
    InnoDB counter only rises with the ids inserted below it.
    """
    with source.cursor() as cursor:
        cursor.execute("SELECT name, seq FROM sqlite_sequence")
        sequences = dict(cursor.fetchall())
    with target.cursor() as cursor:
        for table in tables:
            if sequences.get(table.name):
                cursor.execute(
                    f"ALTER TABLE {_quoted(target, table.name)} "
                    f"AUTO_INCREMENT = {int(sequences[table.name]) + 1}"
                )


def _copy_tables(
    source: BaseDatabaseWrapper,
    target: BaseDatabaseWrapper,
    tables: list[Table],
    progress: Callable[[str], None],
) -> list[tuple[str, int]]:
    with target.cursor() as cursor:
        for table in reversed(tables):
            cursor.execute(f"DELETE FROM {_quoted(target, table.name)}")  # noqa: S608
    counts = []
    for table in tables:
        started = time.perf_counter()
        expected = _count(source, table.name)
        if table.self_referencing:
            # Parents before children is not guaranteed by key order: the
            # source kept the references whole, so they are trusted here.
            with target.cursor() as cursor:
                cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        copied = copy_table(target, table)
        if table.self_referencing:
            with target.cursor() as cursor:
                cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
        found = _count(target, table.name)
        if not expected == copied == found:
            raise MoveError(
                f"{table.name}: {expected} rows in SQLite, {copied} copied, {found} in MariaDB"
            )
        counts.append((table.name, found))
        if found:
            progress(
                f"{table.name}: {found} row{'' if found == 1 else 's'} "
                f"({time.perf_counter() - started:.1f} s)"
            )
    return counts


def _drop(target: BaseDatabaseWrapper, tables: set[str]) -> None:
    with target.cursor() as cursor:
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        cursor.execute(
            "DROP TABLE IF EXISTS " + ", ".join(_quoted(target, t) for t in sorted(tables))
        )
        cursor.execute("SET FOREIGN_KEY_CHECKS = 1")


def move(
    *,
    url: str,
    password: str | None = None,
    migrate: Callable[[str], None] = migrate_in_own_process,
    progress: Callable[[str], None] = lambda line: None,
) -> Moved:
    """Copy every table of the panel's SQLite database into the empty MariaDB
    database at `url` (its password in the URL or as `password`)."""
    started = time.perf_counter()
    entry = target_entry(target_url(url, password))
    tables, skipped = panel_tables()
    target = connect_target(entry)
    try:
        try:
            before = check_empty(target, tables, skipped)
            source = check_source()
        except DatabaseError as exc:  # e.g. a target table this user may not read
            raise MoveError(_reason(exc.__cause__ or exc)) from None
        progress("migrating the target ...")
        made: set[str] | None = None
        try:
            migrate(target_url(url, password))
            made = set(target.introspection.table_names()) - before
            moved = Moved()
            progress("copying ...")
            moved.counts = _copy_all(source, target, tables, progress)
        except BaseException as exc:
            _undo(target, made, before)
            if isinstance(exc, DatabaseError):
                raise MoveError(_reason(exc.__cause__ or exc)) from None
            raise
        moved.skipped = [(name, _count(source, name), why) for name, why in skipped]
        moved.left_behind = left_behind(source, tables, skipped)
    finally:
        target.close()
    moved.seconds = time.perf_counter() - started
    return moved


def _undo(target: BaseDatabaseWrapper, made: set[str] | None, before: set[str]) -> None:
    """Drop what this run created (the copy itself is already rolled back)."""
    try:
        if made is None:
            made = set(target.introspection.table_names()) - before
        if made:
            _drop(target, made)
    except DatabaseError as exc:
        raise MoveError(
            f"the copy failed and the tables it made could not be dropped "
            f"({_reason(exc.__cause__ or exc)}): drop the database and create "
            "it again"
        ) from None
