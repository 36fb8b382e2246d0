"""The typed schema of benchmark files and their item rows."""

from __future__ import annotations

import re
import string
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

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
            raise ValueError(f"template has a malformed placeholder ({exc}); use {{field}}") from exc
        for _, name, spec, conversion in parsed:
            if name is not None and (not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or spec or conversion):
                raise ValueError(
                    f"placeholder {{{name}}} must be a plain field name such as {{question}}"
                )
        return template


class DecodingSpec(_Strict):
    """Decoding parameters. Evaluations are greedy with a fixed seed."""

    max_tokens: int = Field(64, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=0.0)
    seed: int = 0


class BenchmarkSpec(_Strict):
    """A benchmark file: dataset, task, prompt and metrics."""

    name: Slug
    title: NonEmpty
    description: NonEmpty
    task: Literal["generation", "classification"]
    languages: list[str] = Field(min_length=1)
    labels: list[NonEmpty] = Field(default_factory=list)
    attributes: dict[str, list[NonEmpty]] = Field(default_factory=dict)
    dataset: DatasetSpec
    prompt: PromptSpec
    metrics: list[str] = Field(min_length=1)
    primary_metric: str
    breakdowns: list[str] = Field(default_factory=lambda: ["language"])
    decoding: DecodingSpec = Field(default_factory=DecodingSpec)

    @field_validator("languages")
    @classmethod
    def _languages_are_tags(cls, tags: list[str]) -> list[str]:
        return [_check_language(tag) for tag in tags]

    @model_validator(mode="after")
    def _consistent(self) -> BenchmarkSpec:
        task_metrics = known_metrics(self.task)
        unknown = [m for m in self.metrics if m not in task_metrics]
        if unknown:
            raise ValueError(
                f"metrics {unknown} are not {self.task} metrics; known: {', '.join(task_metrics)}"
            )
        if self.primary_metric not in self.metrics:
            raise ValueError(f"primary_metric {self.primary_metric!r} must be one of metrics")
        if self.task == "classification" and len(set(self.labels)) < 2:
            raise ValueError("a classification benchmark needs at least two distinct labels")
        if self.task == "generation" and self.labels:
            raise ValueError("labels are only for classification benchmarks; remove them")
        allowed = BUILTIN_BREAKDOWNS | set(self.attributes)
        bad = [b for b in self.breakdowns if b not in allowed]
        if bad:
            raise ValueError(
                f"breakdowns {bad} are unknown; use {sorted(allowed)} "
                "(declare attribute breakdowns under attributes:)"
            )
        clash = RESERVED_COLUMNS & (set(self.attributes) | set(self.prompt.fields))
        if clash:
            raise ValueError(f"names {sorted(clash)} are reserved; rename those fields")
        return self


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
                ("language", f"{self.language!r} is not among the benchmark's languages {spec.languages}")
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
