"""Read benchmark files, reporting every problem with its file, line and field."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import NotFoundError, ValidationFailed
from ..settings import Settings
from ._identity import definition_identity, generation_identity, scoring_identity
from ._schema import (
    BenchmarkSpec,
    CardText,
    DatasetFileSpec,
    DatasetRef,
    DatasetSpec,
    FieldProblems,
    ItemSpec,
)

__all__ = [
    "LINE_CHARS_PER_FIELD_CHAR",
    "MAX_BENCHMARK_FILE_BYTES",
    "MAX_ITEMS",
    "MAX_ITEMS_FILE_BYTES",
    "LoadedBenchmark",
    "content_hash",
    "load_benchmark_file",
    "starter_benchmark_paths",
]

STARTER_DIR = Path(__file__).parent / "starter"

MAX_ITEMS = 100_000  # items in one file; larger sets are split into several benchmarks
MAX_ITEMS_FILE_BYTES = 512 * 1024 * 1024  # the items file is read whole
MAX_BENCHMARK_FILE_BYTES = 1024 * 1024  # the YAML file holds no items
# A line may hold up to 20 input fields plus reference, label and attributes, each
# up to max_field_chars, and a \uXXXX escape spells one character in six bytes.
LINE_CHARS_PER_FIELD_CHAR = 150


@dataclass(frozen=True)
class DatasetContent:
    """Rows plus card metadata: everything a dataset release needs, with or without a benchmark.

    ``benchmark`` is the benchmark whose file carried the items inline, if any
    (its metrics are named on the data card).
    """

    name: str
    title: str
    license: str
    task: str
    languages: list[str]
    labels: list[str]
    attributes: dict[str, list[str]]
    card: CardText
    items: list[ItemSpec]
    source: str
    input_fields: list[str]
    benchmark: BenchmarkSpec | None = None

    @property
    def content_hash(self) -> str:
        """SHA-256 of the items: the name of the dataset version they form."""
        return content_hash(self.items)


@dataclass(frozen=True)
class LoadedBenchmark:
    """A validated benchmark file and its items (none when it refers to a released version)."""

    path: Path
    spec: BenchmarkSpec
    items: list[ItemSpec]

    @property
    def dataset_ref(self) -> DatasetRef | None:
        """The released dataset version the file refers to, or None for inline items."""
        return self.spec.dataset if isinstance(self.spec.dataset, DatasetRef) else None

    @property
    def dataset(self) -> DatasetContent:
        """The inline items as a dataset release.

        Raises:
            ValueError: the benchmark refers to a released version instead.
        """
        spec = self.spec
        if not isinstance(spec.dataset, DatasetSpec):
            raise ValueError(f"{self.path} refers to released dataset {spec.dataset}")
        return DatasetContent(
            name=spec.dataset.name,
            title=spec.title,
            license=spec.dataset.license,
            task=spec.task,
            languages=list(spec.languages),
            labels=list(spec.labels),
            attributes=dict(spec.attributes),
            card=spec.dataset.card,
            items=self.items,
            source=self.path.name,
            input_fields=list(spec.prompt.fields),
            benchmark=spec,
        )

    @property
    def content_hash(self) -> str:
        """SHA-256 of the items: the name of the dataset version they form."""
        ref = self.dataset_ref
        return ref.content_hash if ref else content_hash(self.items)

    @property
    def generation_hash(self) -> str:
        """The generation identity: what decides the outputs (see ``_identity``)."""
        spec = self.spec
        return generation_identity(
            self.content_hash,
            spec.prompt.template,
            spec.prompt.system,
            spec.decoding.model_dump(mode="json"),
            spec.prompt.chat_template,
            spec.max_model_len,
        )

    @property
    def answer_spec(self) -> dict[str, Any]:
        """How answers are read, as stored JSON (empty: the default rule)."""
        answer = getattr(self.spec, "answer", None)
        return answer.model_dump(mode="json") if answer is not None else {}

    @property
    def scoring_hash(self) -> str:
        """The scoring identity: what decides the numbers (see ``_identity``)."""
        spec = self.spec
        return scoring_identity(
            spec.task,
            list(spec.metrics),
            list(spec.labels),
            self.answer_spec,
            list(spec.breakdowns),
        )

    @property
    def definition_hash(self) -> str:
        """Names this definition: its name and both identities."""
        return definition_identity(self.spec.name, self.generation_hash, self.scoring_hash)


def content_hash(items: list[ItemSpec]) -> str:
    """SHA-256 over the items' canonical JSON, in id order."""
    digest = hashlib.sha256()
    for item in sorted(items, key=lambda i: i.id):
        line = json.dumps(item.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def starter_benchmark_paths() -> list[Path]:
    """The benchmark files shipped with Sabha."""
    return sorted(STARTER_DIR.glob("*.yaml"))


def _field_path(loc: tuple[Any, ...]) -> str:
    # pydantic marks a problem with a mapping's key by appending "[key]"
    # and a tagged union (``dataset:``) adds its tag, which names no field
    parts = [str(part) for part in loc if part != "[key]"]
    return ".".join(part for part in parts if not part.startswith("§")) or "(top level)"


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _pydantic_problems(where: str, error: ValidationError) -> list[str]:
    problems: list[str] = []
    for detail in error.errors():
        field = _field_path(detail["loc"])
        cause = (detail.get("ctx") or {}).get("error")
        if isinstance(cause, FieldProblems):
            problems.extend(f"{where}: field '{field}.{sub}': {m}" for sub, m in cause.problems)
            continue
        kind = detail["type"]
        if kind == "string_type":
            message = f"must be a string, not {_json_type(detail['input'])}"
        elif kind == "string_unicode":
            message = "contains a lone surrogate, which is not valid Unicode; fix the \\u escape"
        elif kind in ("dict_type", "model_type"):
            message = f"must be an object, not {_json_type(detail['input'])}"
        elif kind == "extra_forbidden":
            message = "is not a known field; remove it or check its spelling"
        else:
            message = detail["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: field '{field}': {message}")
    return problems


def load_benchmark_file(path: str | Path, max_field_chars: int | None = None) -> LoadedBenchmark:
    """Read and validate a benchmark YAML file and the items file it names.

    Limits: every text field has at most ``max_field_chars`` characters; the
    items file has at most ``MAX_ITEMS`` items and ``MAX_ITEMS_FILE_BYTES``
    bytes, and each line at most ``LINE_CHARS_PER_FIELD_CHAR * max_field_chars``
    bytes (room for every field at its limit, even when ``\\uXXXX``-escaped).

    Args:
        path: The benchmark YAML file.
        max_field_chars: The most characters any text field may have; None
            reads ``SABHA_MAX_FIELD_CHARS`` (``Settings().max_field_chars``).

    Raises:
        NotFoundError: the file does not exist.
        ValidationFailed: anything is wrong; ``problems`` lists every problem,
            each as ``<file>:<line>: field '<name>': <message>``, and nothing is loaded.
    """
    path = Path(path)
    if max_field_chars is None:
        max_field_chars = Settings().max_field_chars
    context = {"max_field_chars": max_field_chars}
    if not path.is_file():
        raise NotFoundError(
            f"Benchmark file {path} does not exist.",
            "Check the path; `sabha benchmarks list` shows the loaded benchmarks.",
        )
    raw = _read_yaml(path, "benchmark", "name, task, dataset, prompt and metrics")
    try:
        spec = BenchmarkSpec.model_validate(raw, context=context)
    except ValidationError as exc:
        raise ValidationFailed(
            f"{path} is not a valid benchmark.",
            _pydantic_problems(str(path), exc),
            "Correct the fields listed above.",
        ) from exc

    if isinstance(spec.dataset, DatasetRef):
        return LoadedBenchmark(path=path, spec=spec, items=[])  # checked when it is loaded
    items = _items_of(path, spec.dataset.items, "dataset.items", spec, max_field_chars)
    return LoadedBenchmark(path=path, spec=spec, items=items)


def load_dataset_file(path: str | Path, max_field_chars: int | None = None) -> DatasetContent:
    """Read and validate a dataset file (rows and card metadata, no benchmark).

    Raises:
        NotFoundError: the file does not exist.
        ValidationFailed: anything is wrong, each problem with file, line and field.
    """
    path = Path(path)
    if max_field_chars is None:
        max_field_chars = Settings().max_field_chars
    if not path.is_file():
        raise NotFoundError(f"Dataset file {path} does not exist.", "Check the path.")
    raw = _read_yaml(path, "dataset", "name, title, license, task, languages, items and card")
    try:
        spec = DatasetFileSpec.model_validate(raw, context={"max_field_chars": max_field_chars})
    except ValidationError as exc:
        raise ValidationFailed(
            f"{path} is not a valid dataset file.",
            _pydantic_problems(str(path), exc),
            "Correct the fields listed above.",
        ) from exc
    items = _items_of(path, spec.items, "items", spec, max_field_chars)
    return DatasetContent(
        name=spec.name,
        title=spec.title,
        license=spec.license,
        task=spec.task,
        languages=list(spec.languages),
        labels=list(spec.labels),
        attributes=dict(spec.attributes),
        card=spec.card,
        items=items,
        source=path.name,
        input_fields=list(dict.fromkeys(name for item in items for name in item.input)),
    )


def _read_yaml(path: Path, kind: str, expected: str) -> dict[str, Any]:
    if path.stat().st_size > MAX_BENCHMARK_FILE_BYTES:
        raise ValidationFailed(
            f"{path} is too large for a {kind} file.",
            [f"{path}: {path.stat().st_size:,} bytes; the limit is {MAX_BENCHMARK_FILE_BYTES:,}"],
            "Keep items in the JSONL file the file names.",
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationFailed(
            f"{path} is not valid YAML.", [f"{where}: {problem}"], "Fix the YAML syntax."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            f"{path} is not UTF-8 text.", [f"{path}: {exc}"], "Save the file as UTF-8."
        ) from exc
    if not isinstance(raw, dict):
        raise ValidationFailed(
            f"{path} does not describe a {kind}.",
            [f"{path}: expected a mapping with {expected}"],
        )
    return raw


def _items_of(
    path: Path,
    relative: str,
    field: str,
    spec: BenchmarkSpec | DatasetFileSpec,
    max_field_chars: int,
) -> list[ItemSpec]:
    items_path = (path.parent / relative).resolve()
    if not items_path.is_file():
        raise ValidationFailed(
            f"{path} names an items file that does not exist.",
            [f"{path}: field '{field}': {items_path} not found"],
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
                f"{where}: a JSON line must be an object, not {_json_type(row)}; "
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
            problems.extend(_pydantic_problems(where, exc))
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
