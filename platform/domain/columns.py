"""Column helpers every table uses: JSON, text, timezone-aware times, statuses, ids."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sabha.platform.wire import UtcTime, as_utc  # one definition, beside the API shapes

__all__ = [
    "EnumText",
    "UtcTime",
    "as_utc",
    "enum_column",
    "id_of",
    "json_column",
    "status_check",
    "text_column",
    "utcnow",
    "when_column",
]

E = TypeVar("E", bound=StrEnum)


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


class EnumText(sa.TypeDecorator[E]):
    """A ``StrEnum`` stored as its value in a ``VARCHAR(length)``; loads as the member.

    The database sees plain strings (no enum type): the allowed values are a
    CHECK (``status_check``), so adding a member needs a migration of the
    CHECK only. A string bound in a query is passed as it is, so a value the
    enum lacks reaches the CHECK (and a filter on it matches nothing).
    """

    impl = sa.String
    cache_ok = True

    def __init__(self, enum: type[E], length: int) -> None:
        super().__init__(length)
        self.enum = enum
        self.length = length

    def process_bind_param(self, value: E | str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> E | None:
        return None if value is None else self.enum(value)


def enum_column(
    enum: type[StrEnum],
    *,
    length: int,
    default: StrEnum | None = None,
    nullable: bool = False,
    index: bool = False,
) -> Any:
    """A column typed as ``enum`` (see ``EnumText``), stored in a ``VARCHAR(length)``.

    Required unless it has a ``default`` or is ``nullable`` (then it defaults to None).
    """
    if default is not None and not isinstance(default, enum):
        raise TypeError(f"the default {default!r} is not a {enum.__name__}")
    required = default is None and not nullable
    return Field(
        default=... if required else default,
        sa_type=EnumText(enum, length),
        nullable=nullable,
        index=index,
    )
