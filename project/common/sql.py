"""
Rows written in hand-built SQL, with the model's own columns and the
values its fields prepare: the booking's one statement (built once, only
its parameters change).
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Model


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
