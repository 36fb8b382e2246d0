"""Read source items to annotate from JSONL or CSV, reporting every bad row.

A row has an ``id`` (unique in the file), the data fields its task type shows
(``configs.task_fields``), and optionally a ``split`` and a ``language`` (which
must be the project's). Other fields are kept with the item and shown to no
one. Every problem is reported by line and field, and nothing is returned
when any row is bad, so an upload imports all of its rows or none.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sabha.platform.domain import AnnotationTaskType
from sabha.platform.errors import ValidationFailed

from .configs import task_fields
from .gold import SOURCE_SPLITS

__all__ = ["SourceRow", "parse_source_items", "read_source_file"]

_KEY_CHARS = 100
_MAX_PROBLEMS = 50


@dataclass(frozen=True)
class SourceRow:
    """One valid row: its key, split and the data shown to annotators."""

    line: int
    key: str
    split: str
    data: dict[str, Any]


def _rows_of(text: str, fmt: str, problems: list[str]) -> list[tuple[int, dict[str, Any]]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"line {number}: not valid JSON ({exc.msg}, column {exc.colno})")
                continue
            if not isinstance(value, dict):
                problems.append(
                    f"line {number}: a row must be a JSON object, not {type(value).__name__}"
                )
                continue
            rows.append((number, value))
        return rows
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        for record in reader:
            number = reader.line_num
            if None in record:
                problems.append(f"line {number}: more values than the header has columns")
                continue
            rows.append((number, {k: v for k, v in record.items() if v is not None}))
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: not valid CSV ({exc})")
    return rows


def parse_source_items(
    text: str,
    fmt: str,
    task_type: AnnotationTaskType,
    language: str,
    *,
    max_field_chars: int = 20_000,
    source: str = "upload",
    default_split: str = "test",
) -> list[SourceRow]:
    """Validate every row of an upload and return them all, or raise.

    Args:
        text: The file's content.
        fmt: ``"jsonl"`` or ``"csv"``.
        task_type: The project's task type: which data fields are required.
        language: The project's language; a row's ``language`` must match it.
        max_field_chars: The longest text a field may have.
        source: The file's name, for messages.
        default_split: The split of a row without one.

    Raises:
        ValidationFailed: any row is bad; ``problems`` names each line and field.
    """
    problems: list[str] = []
    rows = _rows_of(text, fmt, problems)
    required = task_fields(task_type)
    seen: dict[str, int] = {}
    valid: list[SourceRow] = []
    for number, row in rows:
        before = len(problems)
        key = row.get("id")
        if not isinstance(key, str) or not key.strip():
            problems.append(
                f"line {number}: field 'id' is missing or empty; give every row a unique id"
            )
        elif len(key) > _KEY_CHARS:
            problems.append(f"line {number}: field 'id' is longer than {_KEY_CHARS} characters")
        elif key in seen:
            problems.append(f"line {number}: field 'id' {key!r} repeats line {seen[key]}")
        else:
            seen[key] = number
        split = row.get("split", default_split)
        if split not in SOURCE_SPLITS:
            problems.append(
                f"line {number}: field 'split' is {split!r}; use one of "
                f"{', '.join(SOURCE_SPLITS)} (or leave it out for {default_split})"
            )
        row_language = row.get("language")
        if row_language not in (None, "", language):
            problems.append(
                f"line {number}: field 'language' is {row_language!r} but the project is "
                f"{language!r}; upload it to that language's project"
            )
        for name in required:
            value = row.get(name)
            if not isinstance(value, str) or not value.strip():
                problems.append(
                    f"line {number}: field {name!r} is missing or empty "
                    f"(a {task_type} item needs {', '.join(required)})"
                )
            elif len(value) > max_field_chars:
                problems.append(
                    f"line {number}: field {name!r} is longer than {max_field_chars} characters"
                )
            elif "\x00" in value:
                problems.append(f"line {number}: field {name!r} contains a NUL character")
        if len(problems) == before and isinstance(key, str) and isinstance(split, str):
            data = {k: v for k, v in row.items() if k not in {"id", "split", "language"}}
            valid.append(SourceRow(number, key, split, data))
    if not rows and not problems:
        problems.append("the file has no rows")
    if problems:
        shown = problems[:_MAX_PROBLEMS]
        if len(problems) > _MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - _MAX_PROBLEMS} more")
        raise ValidationFailed(
            f"{source}: {len(problems)} problem(s); nothing was imported.",
            shown,
            "Correct the rows named above and upload the whole file again.",
        )
    return valid


def read_source_file(
    path: Path,
    task_type: AnnotationTaskType,
    language: str,
    *,
    max_field_chars: int = 20_000,
    default_split: str = "test",
) -> list[SourceRow]:
    """Read and validate a ``.jsonl`` or ``.csv`` file of source items.

    Rows without a ``split`` get ``default_split``.

    Raises:
        ValidationFailed: the file is unreadable, of another format, or has bad rows.
    """
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in {"jsonl", "csv"}:
        raise ValidationFailed(
            f"{path}: cannot read {path.suffix or 'a file without extension'}.",
            [],
            "Upload a .jsonl file (one JSON object per line) or a .csv file with a header row.",
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            f"{path}: cannot be read ({exc}).", [], "Save it as UTF-8 text and try again."
        ) from exc
    return parse_source_items(
        text,
        fmt,
        task_type,
        language,
        max_field_chars=max_field_chars,
        source=str(path),
        default_split=default_split,
    )
