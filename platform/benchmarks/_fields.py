"""Field types shared by the benchmark schema: text limits, clean text, strict models.

Text limits mirror the database columns of ``platform/domain.py`` (a value the
schema accepts always fits), and every free-text field is bounded by
``max_field_chars`` (``SABHA_MAX_FIELD_CHARS``), passed in the validation
context as ``{"max_field_chars": n}``. The named types below (``Slug``,
``LanguageTag``, ``ItemId``, column names...) are the values benchmark,
dataset and item files share.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationInfo

from ..languages import check_language_tag, check_region

__all__ = [
    "LIMITS",
    "RESERVED_COLUMNS",
    "WHERE",
    "AttributeName",
    "AttributeValue",
    "Dialect",
    "FieldProblems",
    "InputName",
    "ItemId",
    "Label",
    "LanguageTag",
    "License",
    "NonEmpty",
    "RegionCode",
    "Slug",
    "Strict",
    "Stripped",
    "Title",
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


# -- named values ------------------------------------------------------------------------

# An item's own columns; input fields and attributes become columns beside them.
RESERVED_COLUMNS = frozenset({"id", "language", "region", "dialect", "split", "reference", "label"})


def _check_slug(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}[a-z0-9]", name):
        raise ValueError(
            f"{name[:80]!r} is not a valid name; use 3 to 64 lower-case letters, digits and "
            "'-', starting and ending with a letter or digit, e.g. 'kisan-advisory'"
        )
    return name


Slug = Annotated[str, text(), AfterValidator(_check_slug)]
Title = Annotated[str, Stripped, text("title")]
License = Annotated[str, Stripped, text("license")]
Label = Annotated[str, Stripped, text("label")]
AttributeValue = Annotated[str, Stripped, text("attribute_value")]
Dialect = Annotated[str, Stripped, text("dialect")]


def _check_language(tag: str) -> str:
    clean_text(tag, None, None)
    return check_language_tag(tag)


def _check_region(code: str) -> str:
    clean_text(code, None, None)
    return check_region(code)


LanguageTag = Annotated[str, AfterValidator(_check_language)]
RegionCode = Annotated[str, AfterValidator(_check_region)]


def _check_column_name(kind: str, limit: str, pattern: str, example: str) -> AfterValidator:
    def check(name: str) -> str:
        clean_text(name, None, None)
        if name in RESERVED_COLUMNS:
            raise ValueError(
                f"{name!r} is a reserved column name; rename the {kind} "
                f"(e.g. '{name}_{example}')"
                + (" and the template placeholder" if kind == "input field" else "")
            )
        if len(name) > LIMITS[limit]:
            raise ValueError(
                f"{len(name):,} characters; the limit is {LIMITS[limit]} ({WHERE[limit]})"
            )
        if not re.fullmatch(pattern, name):
            raise ValueError(
                f"{name[:40]!r} is not a valid {kind} name; use letters, digits and '_', "
                "starting with a letter"
            )
        return name

    return AfterValidator(check)


InputName = Annotated[
    str, _check_column_name("input field", "input_name", r"[A-Za-z_][A-Za-z0-9_]*", "hint")
]
AttributeName = Annotated[
    str, _check_column_name("attribute", "attribute_name", r"[a-z_][a-z0-9_]*", "group")
]


def _check_item_id(item_id: str) -> str:
    clean_text(item_id, None, None)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", item_id) or ".." in item_id:
        raise ValueError(
            f"{item_id[:40]!r} is not a valid item id; use letters, digits, '_', '-' and '.' "
            "(no '/', '\\' or '..'), starting with a letter or digit"
        )
    if len(item_id) > LIMITS["item_id"]:
        raise ValueError(
            f"{len(item_id):,} characters; the limit is {LIMITS['item_id']} (Item.key)"
        )
    return item_id


ItemId = Annotated[str, AfterValidator(_check_item_id)]
