"""Adopt the tables of a server built from the classic recipe, in place.

Such a server already has `domains (id, name)`, `users (id, domain_id, email,
password[, quota])` and `aliases (id, domain_id, source, destinations)` that
its Postfix and Dovecot query. Adoption keeps every existing column and row,
so those queries keep working unchanged; it only adds what the panel needs:
the missing columns (with defaults: everything active, no limits), the
`alias_domains` table, wider columns where the recipe's are shorter than the
panel accepts, the unique indexes the lookups rely on, and one row per alias
source (several rows for one source are merged into one comma list, which
Postfix answers the same way). Then the initial migration is recorded as
applied and the rest of the schema is migrated as usual.

Every problem in the data is reported before anything changes. The schema
steps inspect the live tables, so an interrupted run can simply be repeated.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection, models, transaction
from django.db.migrations.recorder import MigrationRecorder

from core.actor import Actor
from core.models import AuditEntry
from domains import passwords
from domains.models import Alias, AliasDomain, Domain, Mailbox
from domains.validators import domain_of, normalize_address, normalize_domain

MODELS: list[type[models.Model]] = [Domain, Mailbox, Alias, AliasDomain]
RECIPE_TABLES = {"domains", "users", "aliases"}
INITIAL = ("domains", "0001_initial")


@dataclass
class Plan:
    create_tables: list[str] = field(default_factory=list)
    add_columns: list[str] = field(default_factory=list)
    widen_columns: list[str] = field(default_factory=list)
    add_unique: list[str] = field(default_factory=list)
    add_indexes: list[str] = field(default_factory=list)
    merge_aliases: dict[str, list[int]] = field(default_factory=dict)
    normalise_destinations: dict[int, str] = field(default_factory=dict)
    widen_ids: bool = False
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    # (address, scheme, cost) of hashes over the MAILADMIN_MAX_* bounds, by address.
    costly_hashes: list[tuple[str, str, str]] = field(default_factory=list)

    def warnings(self, shown: int = 10) -> list[str]:
        """The first `shown` costly hashes, then how many more: bounded output."""
        lines = [f"{email}: {scheme} {cost} is over the cost bounds; the panel refuses it "
                 "at sign-in, Dovecot still verifies it: reset this password"
                 for email, scheme, cost in self.costly_hashes[:shown]]
        more = len(self.costly_hashes) - shown
        if more > 0:
            lines.append(f"{more} more hashes over the cost bounds; "
                         "`manage.py mailbox costly-hashes` lists them all")
        return lines

    def changes(self) -> list[str]:
        return (
            (["widen domains.id and the columns that refer to it to BIGINT"]
             if self.widen_ids else [])
            + [f"create table {t}" for t in self.create_tables]
            + [f"add column {c}" for c in self.add_columns]
            + [f"widen column {c}" for c in self.widen_columns]
            + [f"add unique index on {c}" for c in self.add_unique]
            + [f"add index on {c}" for c in self.add_indexes]
            + ([f"normalise the destinations of {len(self.normalise_destinations)} alias "
                "rows (one comma between addresses, lowercase, no empty items)"]
               if self.normalise_destinations else [])
            + [f"merge {len(ids)} alias rows for {source} into one"
               for source, ids in self.merge_aliases.items()]
        )


def already_managed() -> bool:
    applied = MigrationRecorder(connection).applied_migrations()
    return INITIAL in applied


def inspect() -> Plan:
    """What adoption would change, and what in the data stops it. Writes nothing."""
    plan = Plan()
    tables = set(connection.introspection.table_names())
    missing = RECIPE_TABLES - tables
    if missing == RECIPE_TABLES:
        plan.problems.append("there are no domains/users/aliases tables to adopt; "
                             "run `manage.py migrate` for a new installation")
        return plan
    if missing:
        plan.problems.append(f"the recipe's tables are incomplete: {', '.join(sorted(missing))} "
                             "missing")
        return plan
    plan.widen_ids = connection.vendor == "mysql" and _domain_id_type() != "bigint"
    with connection.cursor() as cursor:
        for model in MODELS:
            table = model._meta.db_table
            if table not in tables:
                plan.create_tables.append(table)
                continue
            _plan_columns(cursor, model, plan)
    if not plan.problems:
        _check_rows(plan)
    return plan


def adopt(*, actor: Actor) -> Plan:
    """Adopt the tables; ValidationError listing every problem if the data forbids it."""
    if already_managed():
        raise ValidationError("these tables are already managed by mailadmin")
    plan = inspect()
    if plan.problems:
        raise ValidationError(plan.problems)
    with transaction.atomic():
        with connection.cursor() as cursor:
            for row_id, destinations in plan.normalise_destinations.items():
                # Raw SQL: the `active`/`modified` columns may not exist yet.
                cursor.execute("UPDATE aliases SET destinations = %s WHERE id = %s",
                               [destinations, row_id])
        for source, ids in plan.merge_aliases.items():
            _merge_alias_rows(source, ids)
    _apply_schema(plan)
    MigrationRecorder(connection).record_applied(*INITIAL)
    call_command("migrate", interactive=False, verbosity=0)
    AuditEntry.objects.create(
        actor=str(actor), action="tables.adopt", object_type="schema", object_repr="mail tables",
        after={"changes": plan.changes(), "rows": plan.counts},
    )
    return plan


# ---------------------------------------------------------------- inspection


def _plan_columns(cursor: Any, model: type[models.Model], plan: Plan) -> None:
    table = model._meta.db_table
    columns = {c.name: c for c in connection.introspection.get_table_description(cursor, table)}
    constraints = connection.introspection.get_constraints(cursor, table)
    unique_columns = {tuple(c["columns"]) for c in constraints.values() if c["unique"]}
    indexed_columns = {tuple(c["columns"])[:1] for c in constraints.values()
                       if c["index"] or c["unique"] or c["foreign_key"]}
    if table == "aliases" and "destinations" not in columns:
        plan.problems.append(
            "aliases has no `destinations` column (one row per destination in a column "
            "`destination` is another recipe); rename it in your database and your Postfix "
            "query first")
        return
    # Concrete fields only: Mailbox.usage is a join on the address, not a column.
    for model_field in model._meta.local_concrete_fields:
        column = model_field.column
        if column not in columns:
            plan.add_columns.append(f"{table}.{column}")
            continue
        size = columns[column].internal_size
        if (isinstance(model_field, models.CharField) and connection.vendor != "sqlite"
                and size and size < (model_field.max_length or 0)):
            plan.widen_columns.append(f"{table}.{column}")
        if model_field.unique and not model_field.primary_key and (column,) not in unique_columns:
            plan.add_unique.append(f"{table}.{column}")
        elif (getattr(model_field, "db_index", False) and not model_field.unique
              and (column,) not in indexed_columns):
            plan.add_indexes.append(f"{table}.{column}")


def _check_rows(plan: Plan) -> None:
    """Report rows the panel's rules refuse; find alias sources to merge."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, name FROM domains")
        domains = dict(cursor.fetchall())
        # Without a password column (added by adoption) there is no hash to weigh.
        cursor.execute("SELECT id, domain_id, email, '' FROM users"
                       if "users.password" in plan.add_columns
                       else "SELECT id, domain_id, email, password FROM users")
        users = cursor.fetchall()
        cursor.execute("SELECT id, domain_id, source, destinations FROM aliases ORDER BY id")
        aliases = cursor.fetchall()
    plan.counts = {"domains": len(domains), "mailboxes": len(users), "aliases": len(aliases)}
    problems = plan.problems
    for domain_id, name in domains.items():
        if _normalized(normalize_domain, name) != name:
            problems.append(f"domains id {domain_id}: {name!r} is not a lowercase domain name")
    mailboxes: set[str] = set()
    for row_id, domain_id, email, stored in users:
        _check_address("users", row_id, email, domains.get(domain_id), problems)
        mailboxes.add(email)
        # Not a problem that stops adoption: the hash works in Dovecot today
        # and adoption does not change it; the panel refuses it at sign-in.
        if stored and (costly := passwords.costly_hash(stored)) is not None:
            plan.costly_hashes.append((email, *costly))
    plan.costly_hashes.sort()
    sources: dict[str, list[int]] = {}
    delivering: set[str] = set()
    refused: set[str] = set()
    for row_id, domain_id, source, destinations in aliases:
        _check_address("aliases", row_id, source, domains.get(domain_id), problems,
                       allow_catchall=True)
        sources.setdefault(source, []).append(row_id)
        normal = _normal_destinations(row_id, source, destinations, problems)
        if normal is None:
            refused.add(source)
        elif normal:
            delivering.add(source)
        if normal is not None and normal != destinations:
            plan.normalise_destinations[row_id] = normal
        if source in mailboxes:
            problems.append(f"aliases id {row_id}: {source} is also a mailbox; the panel keeps "
                            "an address as one or the other")
    problems.extend(f"aliases {source}: no destination address (the panel needs one)"
                    for source in sources if source not in delivering | refused)
    plan.merge_aliases = {s: ids for s, ids in sources.items() if len(ids) > 1}


# Postfix reads commas and whitespace alike between the addresses of a list.
_DESTINATION_SEPARATORS = re.compile(r"[,\s]+")


def _normal_destinations(row_id: int, source: str, destinations: str,
                         problems: list[str]) -> str | None:
    """The comma list the panel would store for `destinations` (validated and
    lowercased like its own writes, empty items and repeats dropped), or None
    after reporting the first address its validator refuses.

    The panel's alias maps check each stored item against the tables (the
    SQL tolerates spaces and case, not a `"` or control character), and the
    panel's forms and services expect lists in the form they write.
    """
    normal: list[str] = []
    for item in _DESTINATION_SEPARATORS.split(destinations or ""):
        if not item:
            continue
        try:
            address = normalize_address(item)
        except ValidationError as exc:
            problems.append(f"aliases id {row_id} ({source}): destination {exc.messages[0]}")
            return None
        if address not in normal:
            normal.append(address)
    return ",".join(normal)


def _check_address(table: str, row_id: int, address: str, domain: str | None,
                   problems: list[str], allow_catchall: bool = False) -> None:
    if domain is None:
        problems.append(f"{table} id {row_id}: {address} belongs to no domain row")
        return
    normal = _normalized(lambda a: normalize_address(a, allow_catchall=allow_catchall), address)
    if normal != address:
        problems.append(f"{table} id {row_id}: {address!r} is not a valid lowercase address")
    elif domain_of(address) != domain:
        problems.append(f"{table} id {row_id}: {address} is filed under domain {domain}")


def _normalized(normalize: Any, value: str) -> str | None:
    try:
        return str(normalize(value))
    except ValidationError:
        return None


# ---------------------------------------------------------------- changes


def _merge_alias_rows(source: str, ids: list[int]) -> None:
    rows = list(Alias.objects.filter(pk__in=ids).order_by("pk").values_list("pk", "destinations"))
    merged: list[str] = []
    for _, destinations in rows:
        for item in destinations.replace(" ", "").split(","):
            if item and item not in merged:
                merged.append(item)
    keep = rows[0][0]
    with connection.cursor() as cursor:
        # Raw SQL: the `active`/`modified` columns may not exist yet.
        cursor.execute("UPDATE aliases SET destinations = %s WHERE id = %s",
                       [",".join(merged), keep])
        cursor.execute("DELETE FROM aliases WHERE source = %s AND id <> %s", [source, keep])


def _apply_schema(plan: Plan) -> None:
    by_table = {m._meta.db_table: m for m in MODELS}
    if plan.widen_ids:
        _widen_domain_ids()
    with connection.schema_editor() as editor:
        for table in plan.create_tables:
            editor.create_model(by_table[table])
        for item in plan.add_columns:
            model, model_field = _field(by_table, item)
            _add_column(editor, model, model_field)
        with connection.cursor() as cursor:
            for item in plan.widen_columns:
                model, model_field = _field(by_table, item)
                old = copy.copy(model_field)
                old.max_length = _size(cursor, model, model_field.column)
                old._unique = (model_field.column,) in _unique_columns(cursor, model)
                new = copy.copy(model_field)
                new._unique = old._unique
                editor.alter_field(model, old, new)
        for item in plan.add_unique:
            model, model_field = _field(by_table, item)
            table, column = model._meta.db_table, model_field.column
            # Plain SQL: SQLite's schema editor would rebuild the table for it.
            editor.execute(f"CREATE UNIQUE INDEX {editor.quote_name(f'{table}_{column}_uniq')} "
                           f"ON {editor.quote_name(table)} ({editor.quote_name(column)})")
        for item in plan.add_indexes:
            model, model_field = _field(by_table, item)
            editor.add_index(model, models.Index(
                fields=[model_field.name], name=f"{model._meta.db_table}_{model_field.column}_idx"))


def _add_column(editor: Any, model: type[models.Model], model_field: Any) -> None:
    """Add one column, existing rows getting the field's default.

    SQLite's schema editor rebuilds the table from the model for this, which
    assumes every other column already exists; a plain ADD COLUMN with a
    DEFAULT does not.
    """
    if connection.vendor != "sqlite":
        editor.add_field(model, model_field)
        return
    definition, _ = editor.column_sql(model, model_field, include_default=False)
    default = model_field.get_db_prep_save(editor.effective_default(model_field), connection)
    clause = "" if default is None else f" DEFAULT {editor.quote_value(default)}"
    editor.execute(f"ALTER TABLE {editor.quote_name(model._meta.db_table)} ADD COLUMN "
                   f"{editor.quote_name(model_field.column)} {definition}{clause}")


def _domain_id_type() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = 'domains' AND COLUMN_NAME = 'id'")
        row = cursor.fetchone()
    return str(row[0]).lower() if row else ""


def _widen_domain_ids() -> None:
    """The recipe's INT domains.id becomes the BIGINT the panel's tables refer to.

    MariaDB refuses a foreign key between different integer types, so every
    table the panel adds later (domain admins, import jobs) needs this. The
    recipe's own foreign keys are dropped, their columns widened, and they are
    put back with their original ON DELETE/ON UPDATE rules.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k.TABLE_NAME, k.COLUMN_NAME, k.CONSTRAINT_NAME, r.DELETE_RULE, r.UPDATE_RULE "
            "FROM information_schema.KEY_COLUMN_USAGE k JOIN "
            "information_schema.REFERENTIAL_CONSTRAINTS r ON r.CONSTRAINT_SCHEMA = "
            "k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
            "WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME = 'domains'")
        references = cursor.fetchall()
        quote = connection.ops.quote_name
        for table, _column, constraint, _delete, _update in references:
            cursor.execute(f"ALTER TABLE {quote(table)} DROP FOREIGN KEY {quote(constraint)}")
        cursor.execute("ALTER TABLE domains MODIFY id BIGINT NOT NULL AUTO_INCREMENT")
        for table, column, constraint, delete_rule, update_rule in references:
            cursor.execute(f"ALTER TABLE {quote(table)} MODIFY {quote(column)} BIGINT NOT NULL")
            cursor.execute(
                f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(constraint)} FOREIGN KEY "
                f"({quote(column)}) REFERENCES domains (id) ON DELETE {delete_rule} "
                f"ON UPDATE {update_rule}")


def _field(by_table: dict[str, type[models.Model]], item: str
           ) -> tuple[type[models.Model], Any]:
    table, column = item.split(".")
    model = by_table[table]
    return model, next(f for f in model._meta.local_concrete_fields if f.column == column)


def _size(cursor: Any, model: type[models.Model], column: str) -> int:
    for info in connection.introspection.get_table_description(cursor, model._meta.db_table):
        if info.name == column:
            return int(info.internal_size or 0)
    return 0


def _unique_columns(cursor: Any, model: type[models.Model]) -> set[tuple[str, ...]]:
    constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {tuple(c["columns"]) for c in constraints.values() if c["unique"]}
