"""Fast multi-row inserts for the ingest path.

Django's ``bulk_create`` is general: per row and field it runs ``pre_save``, builds SQL
expressions and (with psycopg's client-side binding) merges every parameter into the SQL text
in Python. For a 500-message batch that was close to half of the CPU the whole batch cost on
PostgreSQL. ``insert_many`` does the same job for plain rows: on PostgreSQL it reserves the ids
from the table's sequence in one query and streams the rows with ``COPY`` (below
``COPY_MIN_ROWS`` rows, one ``INSERT ... RETURNING`` is cheaper); on SQLite, inside a
transaction (which holds the database's write lock: kefu's transactions are IMMEDIATE), it
numbers the rows after the table's highest id and hands them to ``executemany``; otherwise it
is ``bulk_create``.

Contract: the objects are new (no pk), have no pre-save logic beyond ``auto_now``/
``auto_now_add`` and defaults (set at construction), and no multi-table inheritance. After the
call each object has its pk and is marked as saved. Errors surface as Django's database errors
(``IntegrityError`` on a unique violation), so callers handle races as with ``bulk_create``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import connections, router
from django.db.models import (
    BooleanField,
    CharField,
    DateTimeField,
    Field,
    ForeignKey,
    IntegerField,
    JSONField,
    Model,
    TextField,
)
from psycopg.types.json import Jsonb


def insert_many(objects: Sequence[Model], *, using: str | None = None) -> None:
    """Insert ``objects`` (all of one model) and set their primary keys."""
    if not objects:
        return
    model = type(objects[0])
    alias = using or router.db_for_write(model)
    connection = connections[alias]
    if connection.vendor == "postgresql":
        writer = _copy_rows if len(objects) >= COPY_MIN_ROWS else _insert_rows
    elif connection.vendor == "sqlite" and connection.in_atomic_block:
        writer = _sqlite_rows
    else:
        model._default_manager.using(alias).bulk_create(objects)
        return
    fields = _insert_fields(model)
    _copy_related_ids(objects, fields)
    rows = [_row(obj, fields, connection) for obj in objects]
    ids = writer(connection, model, fields, rows)
    for pk, obj in zip(ids, objects, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = alias


def _copy_rows(
    connection: Any, model: type[Model], fields: list[Field], rows: list[list[Any]]
) -> list[int]:
    ids = _reserve_ids(connection, model, len(rows))
    table = connection.ops.quote_name(model._meta.db_table)
    names = [_column(model._meta.pk), *(_column(f) for f in fields)]
    columns = ", ".join(connection.ops.quote_name(name) for name in names)
    statement = f"COPY {table} ({columns}) FROM STDIN"
    copy_rows(connection, statement, [(pk, *row) for pk, row in zip(ids, rows, strict=True)])
    return ids


# Below this many rows one INSERT ... RETURNING beats reserving ids and streaming a COPY (three
# round trips and psycopg's copy machinery): 184 against 360 µs of CPU for one row, the two even
# at about 8 rows, COPY ahead beyond (measured in process). The single-message path stores
# small groups (kefu.conversations.batch.Combiner), so most of its writes are below it.
COPY_MIN_ROWS = 8


def _insert_rows(
    connection: Any, model: type[Model], fields: list[Field], rows: list[list[Any]]
) -> list[int]:
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(_column(f)) for f in fields)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    pk = connection.ops.quote_name(_column(model._meta.pk))
    # PostgreSQL returns the rows of a multi-row VALUES in their order (bulk_create relies on it).
    sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join([one] * len(rows))} RETURNING {pk}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])
        return [row[0] for row in cursor.fetchall()]


def copy_rows(connection: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """Stream ``rows`` to PostgreSQL with ``statement`` (``COPY table (columns) FROM STDIN``).

    Logged as one query like any other (Django's cursor wrapper does not see COPY): query
    counts in tests, the debug toolbar and DEBUG's query log then show every statement sent.
    """
    started = time.monotonic()
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(statement) as copy,
    ):
        for row in rows:
            copy.write_row(row)
    if connection.queries_logged:
        duration = time.monotonic() - started
        connection.queries_log.append(
            {"sql": f"{statement} -- {len(rows)} rows", "time": f"{duration:.3f}"}
        )


def _sqlite_rows(
    connection: Any, model: type[Model], fields: list[Field], rows: list[list[Any]]
) -> list[int]:
    """Explicit ids after the highest one ever used; safe because the caller's transaction holds
    SQLite's single write lock, so no other writer can take an id meanwhile."""
    table = connection.ops.quote_name(model._meta.db_table)
    names = [_column(model._meta.pk), *(_column(f) for f in fields)]
    columns = ", ".join(connection.ops.quote_name(name) for name in names)
    marks = ", ".join("%s" for _ in names)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0),"  # noqa: S608
            f" coalesce((SELECT max(rowid) FROM {table}), 0))",
            [model._meta.db_table],
        )
        start = int(cursor.fetchone()[0]) + 1
        ids = list(range(start, start + len(rows)))
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})",  # noqa: S608
            [(pk, *row) for pk, row in zip(ids, rows, strict=True)],
        )
    return ids


def _copy_related_ids(objects: Sequence[Model], fields: list[Field]) -> None:
    """Copy into each foreign key column the id of the related object it holds, saved after it
    was built (as bulk_create does, without its per-object checks). An unsaved related object
    is an error, as in Django."""
    relations = [f for f in fields if f.is_relation and f.many_to_one]
    for obj in objects:
        for field in relations:
            if not field.is_cached(obj):  # type: ignore[attr-defined]
                continue
            related = field.get_cached_value(obj)  # type: ignore[attr-defined]
            if related is None:
                continue
            if related.pk is None:
                raise ValueError(f"insert_many: unsaved related object in {field.name}")
            if getattr(obj, field.attname) != related.pk:
                setattr(obj, field.attname, related.pk)


def _column(field: Field | None) -> str:
    assert field is not None and field.column is not None
    return field.column


def _insert_fields(model: type[Model]) -> list[Field]:
    pk = model._meta.pk
    return [f for f in model._meta.concrete_fields if f is not pk]


# Fields whose Python value is already what the driver takes (text, numbers, booleans, foreign
# key ids): Django's get_db_prep_save only re-validates them, a sizeable share of a batch's CPU.
_PLAIN_FIELDS = (CharField, TextField, IntegerField, BooleanField, ForeignKey)


def _row(obj: Model, fields: list[Field], connection: Any) -> list[Any]:
    values = []
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = field.pre_save(obj, add=True)
        else:
            value = getattr(obj, field.attname)
        values.append(_prepared(field, value, connection))
    return values


def _prepared(field: Field, value: Any, connection: Any) -> Any:
    if value is None:
        return None
    if isinstance(field, _PLAIN_FIELDS) and isinstance(value, str | int | bool):
        return value
    if isinstance(field, JSONField) and connection.vendor == "postgresql" and field.encoder is None:
        return Jsonb(value)
    if isinstance(field, DateTimeField) and value.tzinfo is not None:
        # The general path re-checks awareness and warns; an aware value only needs adapting.
        return adapt_datetime(value, connection)
    return field.get_db_prep_save(value, connection)


def adapt_datetime(value: datetime, connection: Any) -> Any:
    """What ``connection.ops.adapt_datetimefield_value`` makes of ``value``, faster.

    For an aware value on SQLite with the connection in UTC (kefu's setting) Django makes it
    naive in the connection's zone and stores its ``str()``: the same done directly takes
    1.4 µs instead of 3.8, and a received message has half a dozen such values on the batch path.
    """
    if (
        value.tzinfo is not None
        and connection.vendor == "sqlite"
        and connection.timezone_name == "UTC"
    ):
        return str(value.astimezone(UTC).replace(tzinfo=None))
    return connection.ops.adapt_datetimefield_value(value)


def _reserve_ids(connection: Any, model: type[Model], count: int) -> list[int]:
    """``count`` fresh ids from the table's own sequence (identity or serial column)."""
    table = model._meta.db_table
    column = _column(model._meta.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [connection.ops.quote_name(table), column, count],
        )
        return [row[0] for row in cursor.fetchall()]


def update_many(objects: Sequence[Model], field_names: Sequence[str]) -> None:
    """Write ``field_names`` of each (saved) object, in as few statements as the database allows.

    Django's ``bulk_update`` builds a CASE expression per field and row, which for a few hundred
    rows costs more CPU than everything else the caller does. On PostgreSQL one ``UPDATE ...
    FROM unnest(<one array per column>)`` writes every row; elsewhere one prepared UPDATE is sent
    once per row with ``executemany``.
    """
    if not objects:
        return
    model = type(objects[0])
    connection = connections[router.db_for_write(model)]
    fields: list[Field] = [model._meta.get_field(name) for name in field_names]  # type: ignore[misc]
    rows = [[_prepared(f, getattr(obj, f.attname), connection) for f in fields] for obj in objects]
    ids = [obj.pk for obj in objects]
    table = connection.ops.quote_name(model._meta.db_table)
    pk_column = connection.ops.quote_name(_column(model._meta.pk))
    columns = [connection.ops.quote_name(_column(f)) for f in fields]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            types = [
                _column_type(model._meta.pk, connection),
                *(_column_type(f, connection) for f in fields),
            ]
            arrays = ", ".join(f"%s::{kind}[]" for kind in types)
            names = ", ".join(f"c{i}" for i in range(len(types)))
            assignments = ", ".join(f"{column} = v.c{i + 1}" for i, column in enumerate(columns))
            cursor.execute(
                f"UPDATE {table} AS t SET {assignments} "  # noqa: S608
                f"FROM unnest({arrays}) AS v({names}) WHERE t.{pk_column} = v.c0",
                [ids, *([row[i] for row in rows] for i in range(len(fields)))],
            )
        else:
            assignments = ", ".join(f"{column} = %s" for column in columns)
            cursor.executemany(
                f"UPDATE {table} SET {assignments} WHERE {pk_column} = %s",  # noqa: S608
                [[*row, pk] for row, pk in zip(rows, ids, strict=True)],
            )


def _column_type(field: Field | None, connection: Any) -> str:
    """The column's type for an array cast; an auto id is a bigint or integer column."""
    assert field is not None
    kind = field.rel_db_type(connection) if field.primary_key else field.db_type(connection)
    assert kind is not None
    return kind
