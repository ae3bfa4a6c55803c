"""
Rows written in hand-built SQL, with the model's own columns and the
values its fields prepare: the booking's one statement, and the outbox's
insert (statements built once, only their parameters change).
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Model
from django.db.models.constants import OnConflict


def _fields(model: type[Model]) -> list:
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def insert_sql(model: type[Model], exprs: dict[str, str], *, cast: bool = True) -> tuple[str, str]:
    """
    Column list and value list to insert a `model` row; `exprs` replace
    values. `cast`: each parameter cast to its column's type, as a SELECT
    (not VALUES) needs on PostgreSQL.
    """
    columns = ", ".join(connection.ops.quote_name(f.column) for f in _fields(model))
    values = ", ".join(
        exprs[f.name] if f.name in exprs else (f"%s::{f.db_type(connection)}" if cast else "%s")
        for f in _fields(model)
    )
    return columns, values


def insert_params(instance: Model, exprs: dict[str, list]) -> list:
    """The parameters of `insert_sql` for `instance`, in order."""
    params: list = []
    for field in _fields(type(instance)):
        if field.name in exprs:
            params += exprs[field.name]
        else:
            params.append(field.get_db_prep_save(field.pre_save(instance, add=True), connection))
    return params


def insert_ignoring_conflicts(rows: list[Model]) -> None:
    """
    Insert `rows` (of one model) in one statement; a row that breaks a
    unique constraint is left out, as bulk_create(ignore_conflicts=True)
    does, without building the query anew each time.
    """
    model = type(rows[0])
    key = (model, len(rows), connection.vendor)
    sql = _ignoring.get(key)
    if sql is None:
        columns, values = insert_sql(model, {}, cast=False)
        ops = connection.ops
        sql = _ignoring[key] = " ".join(
            [
                ops.insert_statement(on_conflict=OnConflict.IGNORE),
                f"{ops.quote_name(model._meta.db_table)} ({columns})",
                "VALUES " + ", ".join([f"({values})"] * len(rows)),
                ops.on_conflict_suffix_sql([], OnConflict.IGNORE, [], []),
            ]
        )
    params = [p for row in rows for p in insert_params(row, {})]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


_ignoring: dict[tuple, str] = {}
