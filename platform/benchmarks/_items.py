"""Read a JSONL items file, reporting every bad row with its line, and hash the items.

Items are read whole and checked row by row against the benchmark or dataset
file that names them; any problem refuses the whole file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ValidationFailed
from ._dataset import DatasetFileSpec
from ._problems import json_type, pydantic_problems
from ._schema import BenchmarkSpec, ItemSpec
from ._yaml import FieldLines

__all__ = [
    "LINE_CHARS_PER_FIELD_CHAR",
    "MAX_ITEMS",
    "MAX_ITEMS_FILE_BYTES",
    "content_hash",
    "read_items_file",
]

MAX_ITEMS = 100_000  # items in one file; larger sets are split into several benchmarks
MAX_ITEMS_FILE_BYTES = 512 * 1024 * 1024  # the items file is read whole
# A line may hold up to 20 input fields plus reference, label and attributes, each
# up to max_field_chars, and a \uXXXX escape spells one character in six bytes.
LINE_CHARS_PER_FIELD_CHAR = 150


def content_hash(items: list[ItemSpec]) -> str:
    """SHA-256 over the items' canonical JSON, in id order."""
    digest = hashlib.sha256()
    for item in sorted(items, key=lambda i: i.id):
        line = json.dumps(item.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def read_items_file(
    path: Path,
    lines: FieldLines,
    relative: str,
    field: str,
    spec: BenchmarkSpec | DatasetFileSpec,
    max_field_chars: int,
) -> list[ItemSpec]:
    """The items of the JSONL file ``relative`` to ``path``, named by its field ``field``.

    Each row is checked against ``spec``: at most ``MAX_ITEMS`` rows and
    ``MAX_ITEMS_FILE_BYTES`` bytes, each line at most
    ``LINE_CHARS_PER_FIELD_CHAR * max_field_chars`` bytes, ids unique.

    Raises:
        ValidationFailed: the file is missing, or any row is wrong (each problem
            as ``<items file>:<line>: ...``); nothing is returned.
    """
    items_path = (path.parent / relative).resolve()
    if not items_path.is_file():
        raise ValidationFailed(
            f"{path} names an items file that does not exist.",
            [f"{path}:{lines.line_of(field)}: field '{field}': {items_path} not found"],
            f"Point {field} at a JSONL file, relative to {path.name}.",
        )
    items, problems = _read_items(items_path, spec, max_field_chars)
    if problems:
        raise ValidationFailed(
            f"{items_path} has {len(problems)} problem(s).",
            problems,
            "Correct the rows listed above; each line is one JSON object.",
        )
    return items


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _parse_line(where: str, raw: bytes, line_limit: int) -> tuple[Any, str | None]:
    """A line's JSON value, or a problem naming ``where``."""
    if len(raw) > line_limit:
        return None, (
            f"{where}: line has {len(raw):,} bytes; the limit is {line_limit:,} "
            f"({LINE_CHARS_PER_FIELD_CHAR} × SABHA_MAX_FIELD_CHARS)"
        )
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, (
            f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
            "save the file as UTF-8"
        )
    if not line.strip():
        return None, None
    try:
        return json.loads(line, object_pairs_hook=_no_duplicate_keys), None
    except json.JSONDecodeError as exc:
        return None, f"{where}: not valid JSON ({exc.msg} at column {exc.colno})"
    except _DuplicateKey as exc:
        return None, f"{where}: field '{exc.key}': appears twice in one object; keep one"
    except RecursionError:
        return None, f"{where}: not valid JSON (nested too deeply); item fields are flat"


def _read_items(
    items_path: Path, spec: BenchmarkSpec | DatasetFileSpec, max_field_chars: int
) -> tuple[list[ItemSpec], list[str]]:
    size = items_path.stat().st_size
    if size > MAX_ITEMS_FILE_BYTES:
        return [], [
            f"{items_path}: {size:,} bytes; the limit is {MAX_ITEMS_FILE_BYTES:,}; "
            "split the dataset into several benchmarks"
        ]
    items: list[ItemSpec] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    context = {"max_field_chars": max_field_chars}
    line_limit = LINE_CHARS_PER_FIELD_CHAR * max_field_chars
    data = items_path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # tolerate a BOM
    # Split on "\n" only: JSON strings may hold U+2028 and other line breaks.
    for number, raw in enumerate(data.split(b"\n"), start=1):
        where = f"{items_path}:{number}"
        row, problem = _parse_line(where, raw.removesuffix(b"\r"), line_limit)
        if problem:
            problems.append(problem)
            continue
        if row is None and not raw.strip():
            continue
        if not isinstance(row, dict):
            problems.append(
                f"{where}: a JSON line must be an object, not {json_type(row)}; "
                'write one item per line, e.g. {"id": "hi-001", ...}'
            )
            continue
        if len(seen) >= MAX_ITEMS:
            problems.append(
                f"{where}: more than {MAX_ITEMS:,} items; split the dataset into several benchmarks"
            )
            break
        try:
            item = ItemSpec.model_validate(row, context=context)
        except ValidationError as exc:
            problems.extend(pydantic_problems(where, exc))
            if isinstance(row.get("id"), str):
                seen.setdefault(row["id"], number)  # a later duplicate is still reported
            continue
        problems.extend(f"{where}: field '{f}': {m}" for f, m in item.problems_against(spec))
        if item.id in seen:
            problems.append(
                f"{where}: field 'id': {item.id!r} already used on line {seen[item.id]}"
            )
        seen.setdefault(item.id, number)
        items.append(item)
    if not items and not problems:
        problems.append(f"{items_path}: no items")
    return items, problems
