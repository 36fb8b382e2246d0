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
from ._schema import BenchmarkSpec, ItemSpec

__all__ = [
    "LoadedBenchmark",
    "content_hash",
    "load_benchmark_file",
    "starter_benchmark_paths",
]

STARTER_DIR = Path(__file__).parent / "starter"


@dataclass(frozen=True)
class LoadedBenchmark:
    """A validated benchmark file and its items."""

    path: Path
    spec: BenchmarkSpec
    items: list[ItemSpec]

    @property
    def content_hash(self) -> str:
        """SHA-256 of the items: the name of the dataset version they form."""
        return content_hash(self.items)

    @property
    def definition_hash(self) -> str:
        """SHA-256 of the definition (prompt, metrics, decoding...) and the content hash."""
        definition = self.spec.model_dump(mode="json", exclude={"dataset": {"card", "items"}})
        payload = json.dumps(
            {"definition": definition, "content": self.content_hash},
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


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
    return ".".join(str(part) for part in loc) or "(top level)"


def _pydantic_problems(where: str, error: ValidationError) -> list[str]:
    problems = []
    for detail in error.errors():
        message = detail["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: field '{_field_path(detail['loc'])}': {message}")
    return problems


def load_benchmark_file(path: str | Path) -> LoadedBenchmark:
    """Read and validate a benchmark YAML file and the items file it names.

    Raises:
        NotFoundError: the file does not exist.
        ValidationFailed: anything is wrong; ``problems`` lists every problem,
            each naming the file, line (for items) and field.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(
            f"Benchmark file {path} does not exist.",
            "Check the path; `sabha benchmarks list` shows the loaded benchmarks.",
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
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
            f"{path} does not describe a benchmark.",
            [f"{path}: expected a mapping with name, task, dataset, prompt and metrics"],
        )
    try:
        spec = BenchmarkSpec.model_validate(raw)
    except ValidationError as exc:
        raise ValidationFailed(
            f"{path} is not a valid benchmark.",
            _pydantic_problems(str(path), exc),
            "Correct the fields listed above.",
        ) from exc

    items_path = (path.parent / spec.dataset.items).resolve()
    if not items_path.is_file():
        raise ValidationFailed(
            f"{path} names an items file that does not exist.",
            [f"{path}: field 'dataset.items': {items_path} not found"],
            "Point dataset.items at a JSONL file, relative to the benchmark file.",
        )
    items, problems = _read_items(items_path, spec)
    if problems:
        raise ValidationFailed(
            f"{items_path} has {len(problems)} problem(s).",
            problems,
            "Correct the rows listed above; each line is one JSON object.",
        )
    return LoadedBenchmark(path=path, spec=spec, items=items)


def _read_items(items_path: Path, spec: BenchmarkSpec) -> tuple[list[ItemSpec], list[str]]:
    items: list[ItemSpec] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    try:
        lines = items_path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        return [], [f"{items_path}: not UTF-8 text ({exc})"]
    for number, line in enumerate(lines, start=1):
        where = f"{items_path}:{number}"
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        try:
            item = ItemSpec.model_validate(row)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(where, exc))
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
