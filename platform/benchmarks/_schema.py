"""The typed schema of benchmark files and their item rows."""

from __future__ import annotations

import re
import string
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from sabha.leaderboards.metrics import known_metrics

from ..languages import is_language_tag

__all__ = [
    "RESERVED_COLUMNS",
    "BenchmarkSpec",
    "CardText",
    "DatasetSpec",
    "DecodingSpec",
    "ItemSpec",
    "PromptSpec",
]

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
RESERVED_COLUMNS = {"id", "language", "region", "dialect", "split", "reference", "label"}
BUILTIN_BREAKDOWNS = {"language", "region", "dialect"}


def _check_language(tag: str) -> str:
    if not is_language_tag(tag):
        raise ValueError(
            f"{tag!r} is not a BCP-47 tag with script; write e.g. hi-Deva, sw-Latn or ta-Taml"
        )
    return tag


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CardText(_Strict):
    """The prose sections of a dataset's data card."""

    summary: NonEmpty
    collection_process: NonEmpty
    intended_use: NonEmpty
    limitations: NonEmpty


class DatasetSpec(_Strict):
    """Where a benchmark's items are and how they are licensed."""

    name: Slug
    items: NonEmpty = Field(description="Path of the JSONL items file, relative to the YAML file")
    license: NonEmpty
    card: CardText


class PromptSpec(_Strict):
    """The prompt template; ``{field}`` placeholders name fields of an item's ``input``."""

    template: NonEmpty
    system: str | None = None

    @property
    def fields(self) -> list[str]:
        """Placeholder names used by the template."""
        return [name for _, name, _, _ in string.Formatter().parse(self.template) if name]

    @field_validator("template")
    @classmethod
    def _placeholders_are_plain(cls, template: str) -> str:
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ValueError(
                f"template has a malformed placeholder ({exc}); use {{field}}"
            ) from exc
        for _, name, spec, conversion in parsed:
            if name is not None and (
                not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or spec or conversion
            ):
                raise ValueError(
                    f"placeholder {{{name}}} must be a plain field name such as {{question}}"
                )
        return template


class DecodingSpec(_Strict):
    """Decoding parameters. Evaluations are greedy with a fixed seed."""

    max_tokens: int = Field(default=64, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=0.0)
    seed: int = 0


LanguageTag = Annotated[str, AfterValidator(_check_language)]


class BenchmarkSpec(_Strict):
    """A benchmark file: dataset, task, prompt and metrics.

    Each rule is a field validator that reads only earlier fields, so one
    broken field never hides problems in the others.
    """

    name: Slug
    title: NonEmpty
    description: NonEmpty
    task: Literal["generation", "classification"]
    languages: list[LanguageTag] = Field(min_length=1)
    labels: list[NonEmpty] = Field(default_factory=list)
    attributes: dict[str, list[NonEmpty]] = Field(default_factory=dict)
    dataset: DatasetSpec
    prompt: PromptSpec
    metrics: list[str] = Field(min_length=1)
    primary_metric: str
    breakdowns: list[str] = Field(default_factory=lambda: ["language"])
    decoding: DecodingSpec = Field(default_factory=DecodingSpec)

    @field_validator("labels")
    @classmethod
    def _labels_fit_task(cls, labels: list[str], info: ValidationInfo) -> list[str]:
        task = info.data.get("task")
        if task == "classification" and len(set(labels)) < 2:
            raise ValueError("a classification benchmark needs at least two distinct labels")
        if task == "generation" and labels:
            raise ValueError("labels are only for classification benchmarks; remove them")
        return labels

    @field_validator("attributes")
    @classmethod
    def _attributes_not_reserved(cls, attributes: dict[str, list[str]]) -> dict[str, list[str]]:
        clash = RESERVED_COLUMNS & set(attributes)
        if clash:
            raise ValueError(f"attribute names {sorted(clash)} are reserved; rename them")
        return attributes

    @field_validator("prompt")
    @classmethod
    def _fields_not_reserved(cls, prompt: PromptSpec) -> PromptSpec:
        clash = RESERVED_COLUMNS & set(prompt.fields)
        if clash:
            raise ValueError(f"template fields {sorted(clash)} are reserved; rename them")
        return prompt

    @field_validator("metrics")
    @classmethod
    def _metrics_fit_task(cls, metrics: list[str], info: ValidationInfo) -> list[str]:
        task = info.data.get("task")
        allowed = known_metrics(task) if task else known_metrics()
        unknown = [m for m in metrics if m not in allowed]
        if unknown:
            raise ValueError(
                f"{unknown} are not {task or 'known'} metrics; known: {', '.join(allowed)}"
            )
        return metrics

    @field_validator("primary_metric")
    @classmethod
    def _primary_is_listed(cls, primary: str, info: ValidationInfo) -> str:
        metrics = info.data.get("metrics")
        if metrics is not None and primary not in metrics:
            raise ValueError(f"{primary!r} must be one of metrics {metrics}")
        return primary

    @field_validator("breakdowns")
    @classmethod
    def _breakdowns_known(cls, breakdowns: list[str], info: ValidationInfo) -> list[str]:
        allowed = BUILTIN_BREAKDOWNS | set(info.data.get("attributes") or {})
        bad = [b for b in breakdowns if b not in allowed]
        if bad:
            raise ValueError(
                f"{bad} are unknown; use {sorted(allowed)} "
                "(declare attribute breakdowns under attributes:)"
            )
        return breakdowns


class ItemSpec(_Strict):
    """One row of a benchmark's JSONL items file."""

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    language: str
    region: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")] | None = None
    dialect: NonEmpty | None = None
    split: Literal["test", "dev"]
    input: dict[str, NonEmpty] = Field(min_length=1)
    reference: NonEmpty | None = None
    label: NonEmpty | None = None
    attributes: dict[str, NonEmpty] = Field(default_factory=dict)

    @field_validator("language")
    @classmethod
    def _language_is_tag(cls, tag: str) -> str:
        return _check_language(tag)

    def problems_against(self, spec: BenchmarkSpec) -> list[tuple[str, str]]:
        """Ways this item does not fit ``spec``, as ``(field, message)`` pairs."""
        problems: list[tuple[str, str]] = []
        if self.language not in spec.languages:
            problems.append(
                (
                    "language",
                    f"{self.language!r} is not among the benchmark's languages {spec.languages}",
                )
            )
        missing = [f for f in spec.prompt.fields if f not in self.input]
        if missing:
            problems.append(("input", f"missing {missing}, used by the prompt template"))
        if spec.task == "generation" and not self.reference:
            problems.append(("reference", "a generation item needs a reference answer"))
        if spec.task == "classification":
            if self.label not in spec.labels:
                problems.append(("label", f"{self.label!r} is not one of {spec.labels}"))
        elif self.label is not None:
            problems.append(("label", "labels are only for classification benchmarks; remove it"))
        for name, allowed in spec.attributes.items():
            value = self.attributes.get(name)
            if value not in allowed:
                problems.append((f"attributes.{name}", f"{value!r} is not one of {allowed}"))
        for name in self.attributes:
            if name not in spec.attributes:
                problems.append(
                    (f"attributes.{name}", f"not declared; declared: {sorted(spec.attributes)}")
                )
        return problems
