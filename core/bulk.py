"""Many rows written or deleted with plain SQL, from values made before the
transaction.

Why: on SQLite a write transaction holds the database's one write lock from
its first statement (transaction_mode IMMEDIATE) until it commits, and every
other panel write waits for it. Django's bulk_create turns each row into SQL
inside that transaction (a model instance, then every value through its
field): profiled on a 30,000-mailbox import, 8.9 of its 12.4 s were spent so,
most of it Python, not SQLite. A long write instead builds its rows as plain
tuples of database values first, outside any transaction, and writes them
inside with `insert_rows` (executemany, in batches), so the lock is held for
little more than the database's own work.

The caller owns what Django would otherwise do: the values are the
database's (`db_value` for anything but text, numbers and booleans), auto_now
columns are given, and `delete_rows` runs no cascade (delete the dependent
rows first) and sends no signal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connections, models, router


def _connection(model: type[models.Model]) -> Any:
    return connections[router.db_for_write(model)]


def _table(model: type[models.Model]) -> str:
    return str(_connection(model).ops.quote_name(model._meta.db_table))


def insertable_columns(model: type[models.Model]) -> frozenset[str]:
    """The columns an INSERT of `model` must name: every concrete one but the
    auto primary key and those left to a database default alone."""
    return frozenset(
        str(field.column) for field in model._meta.concrete_fields
        if not field.primary_key and not (field.db_default is not models.NOT_PROVIDED
                                          and not field.has_default()))


def db_converter(model: type[models.Model], column: str) -> Callable[[Any], Any]:
    """What turns a value into the database's, as `model`'s field of that column
    stores it (a datetime, JSON ...): for many values of one column."""
    field = next(f for f in model._meta.concrete_fields if f.column == column)
    connection = _connection(model)
    return lambda value: field.get_db_prep_save(value, connection)


def db_value(model: type[models.Model], column: str, value: Any) -> Any:
    """`value` as `model`'s field of that column stores it."""
    return db_converter(model, column)(value)


def insert_rows(model: type[models.Model], columns: Sequence[str],
                rows: Iterable[Sequence[Any]], *, batch_size: int = 2000) -> int:
    """INSERT `rows` (database values, in `columns` order) into `model`'s table,
    `batch_size` rows a statement; the number written.

    `columns` must be every insertable column (a new field must not be left
    silently to NULL): a missing or unknown one is a programming error.
    """
    if frozenset(columns) != insertable_columns(model) or len(set(columns)) != len(columns):
        raise ValueError(f"{model.__name__} rows need the columns "
                         f"{sorted(insertable_columns(model))}, not {list(columns)}")
    connection = _connection(model)
    quoted = ", ".join(connection.ops.quote_name(column) for column in columns)
    marks = ", ".join(["%s"] * len(columns))
    # Names from the model, quoted; values as parameters.
    sql = f"INSERT INTO {_table(model)} ({quoted}) VALUES ({marks})"  # noqa: S608
    written = 0
    batch: list[Sequence[Any]] = []
    with connection.cursor() as cursor:
        for row in rows:
            batch.append(row)
            if len(batch) >= batch_size:
                cursor.executemany(sql, batch)
                written += len(batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
            written += len(batch)
    return written


def delete_rows(model: type[models.Model], ids: Iterable[int], *,
                batch_size: int = 2000) -> int:
    """DELETE the rows of `model` with these ids, a range of `batch_size` ids a
    statement (only the listed ids in each range); the number deleted.

    No cascade and no signal: the caller deletes or clears what points here first.
    """
    ordered = sorted(set(ids))
    if not ordered:
        return 0
    connection = _connection(model)
    pk = connection.ops.quote_name(model._meta.pk.column)
    listed = min(batch_size, connection.features.max_query_params or batch_size)
    # Names from the model, quoted; ids as parameters.
    delete = f"DELETE FROM {_table(model)} WHERE {pk}"  # noqa: S608
    deleted = 0
    with connection.cursor() as cursor:
        start = 0
        while start < len(ordered):
            part = ordered[start:start + batch_size]
            if part[-1] - part[0] + 1 == len(part):  # contiguous: one range scan
                cursor.execute(f"{delete} BETWEEN %s AND %s", [part[0], part[-1]])
            else:
                part = part[:listed]
                marks = ", ".join(["%s"] * len(part))
                cursor.execute(f"{delete} IN ({marks})", part)
            deleted += cursor.rowcount
            start += len(part)
    return deleted
