"""Field types shared by the benchmark schema: text limits, clean text, strict models.

Text limits mirror the database columns of ``platform/domain.py`` (a value the
schema accepts always fits), and every free-text field is bounded by
``max_field_chars`` (``SABHA_MAX_FIELD_CHARS``), passed in the validation
context as ``{"max_field_chars": n}``.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationInfo

__all__ = [
    "LIMITS",
    "WHERE",
    "FieldProblems",
    "NonEmpty",
    "Strict",
    "Stripped",
    "clean_text",
    "text",
]

LIMITS = {
    "dataset_name": 100,  # Dataset.name
    "title": 200,  # Dataset.title, Benchmark.title
    "license": 50,  # Dataset.license
    "item_id": 100,  # Item.key
    "language": 35,  # Item.language
    "dialect": 100,  # Item.dialect
    "region": 10,  # Item.region
    "split": 20,  # Item.split
    "label": 100,  # Item.label
    "benchmark_name": 100,  # Benchmark.name
    "task": 30,  # Benchmark.task
    "metric": 30,  # Benchmark.primary_metric, Score.metric
    "attribute_name": 30,  # Score.breakdown
    "attribute_value": 100,  # Score.group
    "input_name": 64,  # a Parquet column name
}
WHERE = {
    "dataset_name": "Dataset.name",
    "title": "Dataset.title",
    "license": "Dataset.license",
    "item_id": "Item.key",
    "dialect": "Item.dialect",
    "label": "Item.label",
    "metric": "Score.metric",
    "attribute_name": "Score.breakdown",
    "attribute_value": "Score.group",
    "input_name": "a column name",
}


class FieldProblems(ValueError):
    """Problems in parts of the value being validated, each named by its field under it.

    The loader appends each field to the location pydantic reports, so a rule
    checked on ``answer`` can name ``answer.aliases.unsafe``.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))
        self.problems = problems


def clean_text(value: str, info: ValidationInfo | None, limit: str | None) -> str:
    """Refuse NUL, lone surrogates and over-long values; see the module docstring."""
    nul = value.find("\x00")
    if nul >= 0:
        raise ValueError(
            f"contains a NUL character (U+0000) at position {nul + 1}; "
            "PostgreSQL cannot store it: remove it"
        )
    surrogate = re.search("[\ud800-\udfff]", value)
    if surrogate:
        raise ValueError(
            f"contains a lone surrogate (U+{ord(surrogate.group()):04X}) at position "
            f"{surrogate.start() + 1}, which is not valid Unicode; fix the \\u escape"
        )
    if limit is not None and len(value) > LIMITS[limit]:
        column = WHERE.get(limit, f"the {limit} column")
        raise ValueError(f"{len(value):,} characters; the limit is {LIMITS[limit]:,} ({column})")
    context = info.context if info is not None else None
    most = (context or {}).get("max_field_chars")
    if most is not None and len(value) > most:
        raise ValueError(
            f"{len(value):,} characters; the limit is {most:,} (SABHA_MAX_FIELD_CHARS)"
        )
    return value


def text(limit: str | None = None) -> AfterValidator:
    def check(value: str, info: ValidationInfo) -> str:
        return clean_text(value, info, limit)

    return AfterValidator(check)


Stripped = StringConstraints(min_length=1, strip_whitespace=True)
NonEmpty = Annotated[str, Stripped, text()]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
