"""Column helpers every table uses: JSON, text, timezone-aware times, status checks, ids."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sabha.platform.wire import UtcTime, as_utc  # one definition, beside the API shapes

__all__ = [
    "UtcTime",
    "as_utc",
    "id_of",
    "json_column",
    "status_check",
    "text_column",
    "utcnow",
    "when_column",
]


def id_of(row: SQLModel) -> int:
    """The primary key of a row that has been flushed (SQLModel types it as optional)."""
    value = getattr(row, "id", None)
    if not isinstance(value, int):
        raise ValueError(f"{type(row).__name__} has no id yet; flush the session first")
    return value


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def json_column(nullable: bool = False) -> Any:
    """A JSON column (required unless ``nullable``)."""
    return Field(default=None if nullable else ..., sa_type=sa.JSON, nullable=nullable)


def when_column(nullable: bool = False) -> Any:
    """A timezone-aware time; required ones default to now (UTC)."""
    if nullable:
        return Field(default=None, sa_type=sa.DateTime(timezone=True), nullable=True)
    return Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)


def text_column(nullable: bool = False) -> Any:
    """A text column without a length limit."""
    return Field(default=None if nullable else ..., sa_type=sa.Text, nullable=nullable)


def status_check(column: str, enum: type[StrEnum], name: str) -> sa.CheckConstraint:
    """A CHECK that ``column`` holds one of ``enum``'s values."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return sa.CheckConstraint(f"{column} IN ({values})", name=name)
