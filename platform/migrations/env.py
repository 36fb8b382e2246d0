"""Alembic environment: runs against the engine Sabha hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from sabha.platform import domain  # noqa: F401  (registers the tables)

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
