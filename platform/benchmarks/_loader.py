"""Read benchmark and dataset files, reporting every problem with its file, line and field.

The YAML is read with each field's line in ``_yaml``, validation errors become
located problems in ``_problems``, and the JSONL items are read in ``_items``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NotFoundError
from ..settings import Settings
from ._dataset import CardText, DatasetFileSpec, DatasetRef, DatasetSpec
from ._identity import definition_identity, generation_identity, scoring_identity
from ._items import content_hash, read_items_file
from ._problems import validate_file
from ._schema import BenchmarkSpec, ItemSpec
from ._yaml import FieldLines, read_yaml_mapping

__all__ = [
    "DatasetContent",
    "LoadedBenchmark",
    "benchmarks_together_problems",
    "datasets_together_problems",
    "load_benchmark_file",
    "load_dataset_file",
    "starter_benchmark_paths",
]

STARTER_DIR = Path(__file__).parent / "starter"


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
    if not path.is_file():
        raise NotFoundError(
            f"Benchmark file {path} does not exist.",
            "Check the path; `sabha benchmarks list` shows the loaded benchmarks.",
        )
    raw, lines = read_yaml_mapping(path, "benchmark", "name, task, dataset, prompt and metrics")
    spec = validate_file(BenchmarkSpec, raw, path, lines, "benchmark", max_field_chars)
    if isinstance(spec.dataset, DatasetRef):  # checked against the database when loaded
        return LoadedBenchmark(path=path, spec=spec, items=[], lines=lines)
    items = read_items_file(path, lines, spec.dataset.items, "dataset.items", spec, max_field_chars)
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
    raw, lines = read_yaml_mapping(path, "dataset", expected)
    spec = validate_file(DatasetFileSpec, raw, path, lines, "dataset file", max_field_chars)
    items = read_items_file(path, lines, spec.items, "items", spec, max_field_chars)
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
