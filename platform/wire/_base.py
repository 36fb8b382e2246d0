"""What every message shares: its two kinds (strict messages, people's inputs), ids and times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, overload

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "MAX_DB_ID",
    "MAX_TEXT_CHARS",
    "DbId",
    "InputShape",
    "Message",
    "UtcTime",
    "WireTime",
    "as_utc",
]

MAX_TEXT_CHARS = 1_000_000

MAX_DB_ID = 2**31 - 1
"""The largest id a database row can have (PostgreSQL ``integer``)."""
DbId = Annotated[int, Field(ge=0, le=MAX_DB_ID)]
"""An id of a database row: out-of-range numbers are refused like any bad field."""
# Times travel as RFC 3339 strings; everything else must arrive as its own JSON type.
WireTime = Annotated[datetime, Field(strict=False)]


class Message(BaseModel):
    """A message: unknown fields refused, and types strict (``false`` is no number,
    ``"5"`` no integer), so what a pool sends means one thing."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class InputShape(BaseModel):
    """What a person sends (a submission): unknown fields refused, text stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """A stored time as timezone-aware UTC (SQLite hands back naive datetimes; Sabha stores UTC)."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


UtcTime = Annotated[datetime, AfterValidator(as_utc)]
"""A time in an API shape: always timezone-aware UTC, whatever the database handed back."""
