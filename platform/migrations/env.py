"""Alembic environment: runs against the engine Sabha hands over."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlmodel import SQLModel

from sabha.platform import domain  # registers the tables


def render_item(kind: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Autogenerate writes an enum column as the VARCHAR it is in the database."""
    if kind == "type" and isinstance(obj, domain.EnumText):
        return f"sa.String(length={obj.length})"
    return False


config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch migrations rebuild SQLite tables (copy, drop, rename); with foreign
        # keys enforced, dropping a referenced table fails. The check below makes
        # sure the rebuilt tables still satisfy every foreign key.
        # On the driver connection, outside any transaction (where it would be a no-op).
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=sqlite,
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left rows with broken foreign keys: {broken[:5]}")
    if connection.in_transaction():  # SQLite's DDL is not transactional for Alembic
        connection.commit()
    if sqlite:
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
