"""Read benchmark files, reporting every problem with its file, line and field."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from ._yaml import FieldLines, read_positioned_yaml

__all__ = [
    "LINE_CHARS_PER_FIELD_CHAR",
    "MAX_BENCHMARK_FILE_BYTES",
    "MAX_ITEMS",
    "MAX_ITEMS_FILE_BYTES",
    "LoadedBenchmark",
    "benchmarks_together_problems",
    "content_hash",
    "datasets_together_problems",
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
    (its metrics are named on the data card). ``origin`` says where the
    metadata came from in messages (a file path, or e.g. ``the annotations of
    X``); ``lines`` and ``field_prefix`` place a field in that file
    (``dataset.license`` in a benchmark file, ``license`` in a dataset file).
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
    origin: str = ""
    lines: FieldLines | None = None
    field_prefix: str = ""

    @property
    def content_hash(self) -> str:
        """SHA-256 of the items: the name of the dataset version they form."""
        return content_hash(self.items)

    def place(self, name: str) -> str:
        """``<file>:<line>`` of a metadata field (``license``, ``card.summary``)."""
        origin = self.origin or self.source
        full = f"{self.field_prefix}{name}"
        return f"{origin}:{self.lines.line_of(full)}" if self.lines else origin

    def where(self, name: str) -> str:
        """``<file>:<line>: field '<name>'``, the start of a problem with that field."""
        return f"{self.place(name)}: field '{self.field_prefix}{name}'"


@dataclass(frozen=True)
class LoadedBenchmark:
    """A validated benchmark file and its items (none when it refers to a released version)."""

    path: Path
    spec: BenchmarkSpec
    items: list[ItemSpec]
    lines: FieldLines = field(default_factory=lambda: FieldLines({}))

    def place(self, name: str) -> str:
        """``<file>:<line>`` of a field."""
        return f"{self.path}:{self.lines.line_of(name)}"

    def where(self, name: str) -> str:
        """``<file>:<line>: field '<name>'``, the start of a problem with that field."""
        return f"{self.place(name)}: field '{name}'"

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
            origin=str(self.path),
            lines=self.lines,
            field_prefix="dataset.",
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


def benchmarks_together_problems(loaded: Sequence[LoadedBenchmark]) -> list[str]:
    """What is wrong with loading these benchmark files together, each file read alone being fine.

    One load gives each benchmark one definition, so two files with one
    ``name`` are refused; and a dataset declared inline by several files must
    declare one licence.
    """
    problems: list[str] = []
    first: dict[str, LoadedBenchmark] = {}
    licences: dict[str, DatasetContent] = {}
    for benchmark in loaded:
        earlier = first.setdefault(benchmark.spec.name, benchmark)
        if earlier is not benchmark:
            problems.append(
                f"{benchmark.where('name')}: {benchmark.spec.name!r} is also the name in "
                f"{earlier.place('name')}; a load gives each benchmark one definition: load "
                "one of the files, or rename one benchmark"
            )
        if benchmark.dataset_ref is None:
            data_set = benchmark.dataset
            declared = licences.setdefault(data_set.name, data_set)
            if declared.license != data_set.license:
                problems.append(
                    f"{data_set.where('license')}: {data_set.license!r}, but "
                    f"{declared.place('license')} declares {declared.license!r} for dataset "
                    f"{data_set.name!r}; one dataset has one licence: make them equal, or give "
                    "one dataset another name"
                )
    return problems


def datasets_together_problems(contents: Sequence[DatasetContent]) -> list[str]:
    """Dataset files released together must name different datasets."""
    problems: list[str] = []
    first: dict[str, DatasetContent] = {}
    for data_set in contents:
        earlier = first.setdefault(data_set.name, data_set)
        if earlier is not data_set:
            problems.append(
                f"{data_set.where('name')}: {data_set.name!r} is also the name in "
                f"{earlier.place('name')}; release one version of a dataset at a time, or "
                "rename one dataset"
            )
    return problems


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


def _pydantic_problems(
    where: str, error: ValidationError, lines: FieldLines | None = None
) -> list[str]:
    """One line per problem: ``<where>[:<line>]: field '<name>': <message>``.

    ``lines`` (a YAML file's) adds the line each field is written on; rows of
    an items file pass their line in ``where`` instead.
    """

    def at(field: str) -> str:
        return f"{where}:{lines.line_of(field)}" if lines is not None else where

    problems: list[str] = []
    for detail in error.errors():
        field = _field_path(detail["loc"])
        cause = (detail.get("ctx") or {}).get("error")
        if isinstance(cause, FieldProblems):
            for sub, message in cause.problems:
                name = f"{field}.{sub}"
                problems.append(f"{at(name)}: field '{name}': {message}")
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
        problems.append(f"{at(field)}: field '{field}': {message}")
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
    raw, lines = _read_yaml(path, "benchmark", "name, task, dataset, prompt and metrics")
    try:
        spec = BenchmarkSpec.model_validate(raw, context=context)
    except ValidationError as exc:
        raise ValidationFailed(
            f"{path} is not a valid benchmark.",
            _pydantic_problems(str(path), exc, lines),
            "Correct the fields listed above.",
        ) from exc

    if isinstance(spec.dataset, DatasetRef):  # checked against the database when loaded
        return LoadedBenchmark(path=path, spec=spec, items=[], lines=lines)
    items = _items_of(path, lines, spec.dataset.items, "dataset.items", spec, max_field_chars)
    return LoadedBenchmark(path=path, spec=spec, items=items, lines=lines)


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
    expected = "name, title, license, task, languages, items and card"
    raw, lines = _read_yaml(path, "dataset", expected)
    try:
        spec = DatasetFileSpec.model_validate(raw, context={"max_field_chars": max_field_chars})
    except ValidationError as exc:
        raise ValidationFailed(
            f"{path} is not a valid dataset file.",
            _pydantic_problems(str(path), exc, lines),
            "Correct the fields listed above.",
        ) from exc
    items = _items_of(path, lines, spec.items, "items", spec, max_field_chars)
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
        origin=str(path),
        lines=lines,
    )


def _read_yaml(path: Path, kind: str, expected: str) -> tuple[dict[str, Any], FieldLines]:
    if path.stat().st_size > MAX_BENCHMARK_FILE_BYTES:
        raise ValidationFailed(
            f"{path} is too large for a {kind} file.",
            [f"{path}: {path.stat().st_size:,} bytes; the limit is {MAX_BENCHMARK_FILE_BYTES:,}"],
            "Keep items in the JSONL file the file names.",
        )
    try:
        document = read_positioned_yaml(path.read_text(encoding="utf-8-sig"))
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
    if not isinstance(document.value, dict):
        raise ValidationFailed(
            f"{path} does not describe a {kind}.",
            [f"{path}:{document.lines.line_of('')}: expected a mapping with {expected}"],
        )
    if document.duplicates:
        raise ValidationFailed(
            f"{path} writes a field twice.",
            [f"{path}:{line}: {problem}" for line, problem in document.duplicates],
            "Keep one of each field.",
        )
    return document.value, document.lines


def _items_of(
    path: Path,
    lines: FieldLines,
    relative: str,
    field: str,
    spec: BenchmarkSpec | DatasetFileSpec,
    max_field_chars: int,
) -> list[ItemSpec]:
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
