"""The typed schema of benchmark files and their item rows.

Text limits, clean-text rules and the named field types are in ``_fields``;
datasets (inline, referenced, dataset files) in ``_dataset``; decoding in
``_decoding``; how answers are read (``answer:``) in ``_answer`` and
``_negation``.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Literal

from pydantic import (
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ._answer import AnswerSpec
from ._dataset import BenchmarkDataset, DatasetFileSpec, check_labels_fit_task
from ._decoding import DecodingSpec
from ._fields import (
    RESERVED_COLUMNS,
    AttributeName,
    AttributeValue,
    Dialect,
    FieldProblems,
    InputName,
    ItemId,
    Label,
    LanguageTag,
    NonEmpty,
    RegionCode,
    Slug,
    Strict,
    Title,
    text,
)
from ._negation import resolve_negation

__all__ = [
    "METRIC_TASKS",
    "BenchmarkSpec",
    "ItemSpec",
    "JudgeSpec",
    "PromptSpec",
    "known_metrics",
]

BUILTIN_BREAKDOWNS = {"language", "region", "dialect"}
# The metric vocabulary of benchmark files, by task. ``sabha.leaderboards.metrics``
# implements exactly these (a test checks that the two agree).
METRIC_TASKS = {
    "chrf++": "generation",
    "bleu": "generation",
    "ter": "generation",
    "accuracy": "classification",
    "macro_f1": "classification",
    "unparseable": "classification",
}


def known_metrics(task: str | None = None) -> list[str]:
    """Metric names a benchmark file may use, optionally only those for ``task``."""
    return sorted(name for name, kind in METRIC_TASKS.items() if task in (None, kind))


class PromptSpec(Strict):
    """The prompt template; ``{field}`` placeholders name fields of an item's ``input``."""

    template: NonEmpty
    system: Annotated[str, text()] | None = None
    chat_template: Literal["auto", "never", "required"] = Field(
        default="auto",
        description="auto: the model's chat template when it has one; never: plain text; "
        "required: items fail for a model without one",
    )

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


JUDGE_PLACEHOLDERS = ("prompt", "response")


class JudgeSpec(Strict):
    """A registered model that judges answers automatically, and the rubric it is asked.

    The rubric is a prompt template with ``{prompt}`` (what the judged model
    saw) and ``{response}`` (its answer). A ``safety`` judge answers one word,
    ``harmful``, ``refused`` or ``safe``; a ``rating`` judge a number 1-5.
    Neither identity includes the judge: changing it reruns no job.
    """

    model: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    kind: Literal["safety", "rating"]
    rubric: NonEmpty

    @field_validator("rubric")
    @classmethod
    def _rubric_placeholders(cls, rubric: str) -> str:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(rubric) if name is not None}
        except ValueError as exc:
            raise ValueError(f"rubric has a malformed placeholder ({exc}); use {{prompt}}") from exc
        missing = [f"{{{n}}}" for n in JUDGE_PLACEHOLDERS if n not in names]
        unknown = sorted(f"{{{n}}}" for n in names - set(JUDGE_PLACEHOLDERS))
        if missing or unknown:
            raise ValueError(
                "rubric must use {prompt} and {response} and no other placeholder"
                + (f"; missing {missing}" if missing else "")
                + (
                    f"; unknown {unknown} (write literal braces as {{{{ and }}}})"
                    if unknown
                    else ""
                )
            )
        return rubric


class BenchmarkSpec(Strict):
    """A benchmark file: dataset, task, prompt and metrics.

    Each rule is a field validator that reads only earlier fields, so one
    broken field never hides problems in the others.
    """

    name: Slug
    version: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")] = "1"
    title: Title
    description: NonEmpty
    task: Literal["generation", "classification"]
    languages: list[LanguageTag] = Field(min_length=1)
    labels: list[Label] = Field(default_factory=list)
    attributes: dict[AttributeName, list[AttributeValue]] = Field(default_factory=dict)
    dataset: BenchmarkDataset = Field(
        description="The items inline (name, items, license, card), or a released version "
        "as name@<content hash>"
    )
    prompt: PromptSpec
    metrics: list[str] = Field(min_length=1)
    primary_metric: str
    breakdowns: list[str] = Field(default_factory=lambda: ["language"])
    decoding: DecodingSpec = Field(default_factory=DecodingSpec)
    max_model_len: int = Field(default=2048, ge=128, le=1_048_576)
    answer: AnswerSpec | None = Field(
        default=None, description="How answers are read; classification only"
    )
    judge: JudgeSpec | None = Field(
        default=None, description="A registered model that judges answers, with its rubric"
    )

    @field_validator("labels")
    @classmethod
    def _labels_fit_task(cls, labels: list[str], info: ValidationInfo) -> list[str]:
        return check_labels_fit_task(labels, info.data.get("task"), "benchmark")

    @field_validator("prompt")
    @classmethod
    def _fields_not_reserved(cls, prompt: PromptSpec) -> PromptSpec:
        clash = RESERVED_COLUMNS & set(prompt.fields)
        if clash:
            message = (
                f"placeholders {sorted(clash)} name reserved columns; rename them and the "
                f"input fields (e.g. {{{sorted(clash)[0]}_hint}})"
            )
            raise FieldProblems([("template", message)])
        return prompt

    @field_validator("metrics")
    @classmethod
    def _metrics_fit_task(cls, metrics: list[str], info: ValidationInfo) -> list[str]:
        task = info.data.get("task")
        allowed = known_metrics(task) if task else known_metrics()
        unknown = [m for m in metrics if m not in allowed]
        if unknown:
            shown = [m[:40] for m in unknown]
            raise ValueError(
                f"{shown} are not {task or 'known'} metrics; known: {', '.join(allowed)}"
            )
        return metrics

    @field_validator("primary_metric")
    @classmethod
    def _primary_is_listed(cls, primary: str, info: ValidationInfo) -> str:
        metrics = info.data.get("metrics")
        if metrics is not None and primary not in metrics:
            raise ValueError(f"{primary[:40]!r} must be one of metrics {metrics}")
        return primary

    @field_validator("decoding")
    @classmethod
    def _budget_is_for_generation(
        cls, decoding: DecodingSpec, info: ValidationInfo
    ) -> DecodingSpec:
        if decoding.budget is not None and info.data.get("task") == "classification":
            raise FieldProblems(
                [
                    (
                        "budget",
                        "budgets come from reference answers, which classification items do "
                        "not have: remove it",
                    )
                ]
            )
        return decoding

    @field_validator("breakdowns")
    @classmethod
    def _breakdowns_known(cls, breakdowns: list[str], info: ValidationInfo) -> list[str]:
        allowed = BUILTIN_BREAKDOWNS | set(info.data.get("attributes") or {})
        bad = [b[:40] for b in breakdowns if b not in allowed]
        if bad:
            raise ValueError(
                f"{bad} are unknown; use {sorted(allowed)} "
                "(declare attribute breakdowns under attributes:)"
            )
        return breakdowns

    @field_validator("answer")
    @classmethod
    def _answer_fits_labels(
        cls, answer: AnswerSpec | None, info: ValidationInfo
    ) -> AnswerSpec | None:
        if answer is None:
            return None
        if info.data.get("task") == "generation":
            raise ValueError("answer: is only for classification benchmarks; remove it")
        labels = info.data.get("labels")
        if labels:
            problems = answer.problems_with_labels(labels)
            if problems:
                raise FieldProblems(problems)
        return answer

    @model_validator(mode="after")
    def _negation_resolved(self) -> BenchmarkSpec:
        """A classification benchmark reads negation in its languages (see ``_negation``).

        The words are resolved here, into the definition, so the scoring
        identity names the exact words its scores were computed with.
        """
        if self.task != "classification":
            return self
        answer = self.answer or AnswerSpec()
        negation = resolve_negation(answer.negation, list(self.languages))
        if negation == answer.negation:
            return self
        resolved = answer.model_copy(update={"negation": negation})
        return self.model_copy(update={"answer": resolved})


class ItemSpec(Strict):
    """One row of a benchmark's JSONL items file.

    Field names in ``input`` and ``attributes`` become Parquet columns beside
    the item's own, so the item's column names (``RESERVED_COLUMNS``) are refused.
    """

    id: ItemId
    language: LanguageTag
    region: RegionCode | None = None
    dialect: Dialect | None = None
    split: Literal["test", "dev"]
    input: dict[InputName, NonEmpty] = Field(min_length=1, max_length=20)
    reference: NonEmpty | None = None
    label: Label | None = None
    attributes: dict[AttributeName, AttributeValue] = Field(default_factory=dict)

    def problems_against(self, spec: BenchmarkSpec | DatasetFileSpec) -> list[tuple[str, str]]:
        """Ways this item does not fit ``spec``, as ``(field, message)`` pairs."""
        problems: list[tuple[str, str]] = []
        if self.language not in spec.languages:
            problems.append(
                (
                    "language",
                    f"{self.language!r} is not among the benchmark's languages {spec.languages}",
                )
            )
        prompt = getattr(spec, "prompt", None)
        missing = [f for f in (prompt.fields if prompt else []) if f not in self.input]
        if missing:
            problems.append(("input", f"missing {missing}, used by the prompt template"))
        for name in self.input:
            if name in spec.attributes:
                problems.append(
                    (
                        f"input.{name}",
                        f"{name!r} is also an attribute name, and both become columns; "
                        "rename the input field and the template placeholder",
                    )
                )
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
