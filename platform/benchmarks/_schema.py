"""The typed schema of benchmark files and their item rows.

Text limits and clean-text rules are in ``_fields``; how answers are read
(``answer:``) in ``_answer`` and ``_negation``.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    Tag,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from ..languages import check_language_tag, check_region
from ._answer import AnswerSpec
from ._fields import LIMITS, WHERE, FieldProblems, NonEmpty, Strict, Stripped, clean_text, text
from ._negation import resolve_negation

__all__ = [
    "DatasetFileSpec",
    "DatasetRef",
    "LIMITS",
    "METRIC_TASKS",
    "RESERVED_COLUMNS",
    "AnswerBudget",
    "AnswerSpec",
    "BenchmarkSpec",
    "CardText",
    "DatasetSpec",
    "DecodingOverrides",
    "DecodingSpec",
    "FieldProblems",
    "apply_decoding_overrides",
    "ItemSpec",
    "JudgeSpec",
    "PromptSpec",
]

RESERVED_COLUMNS = frozenset({"id", "language", "region", "dialect", "split", "reference", "label"})
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


# The sizes of the database columns these values are stored in (platform/domain.py).


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


# The Hugging Face dataset-card vocabulary for how a dataset's text and
# annotations came about (https://huggingface.co/docs/hub/datasets-cards).
AnnotationsCreator = Literal[
    "found", "crowdsourced", "expert-generated", "machine-generated", "no-annotation", "other"
]
LanguageCreator = Literal["found", "crowdsourced", "expert-generated", "machine-generated", "other"]


def _check_source_dataset(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/|-]{0,199}", value):
        raise ValueError(
            f"{value[:40]!r} is not a source dataset; write 'original' for data made for this "
            "dataset, or 'extended|NAME' for one built on the dataset NAME (e.g. extended|flores)"
        )
    return value


SourceDataset = Annotated[str, AfterValidator(_check_source_dataset)]


class CardText(Strict):
    """The prose sections of a dataset's data card, and how its data was made.

    ``annotations_creators``, ``language_creators`` and ``source_datasets`` are
    the Hugging Face card metadata of those names. A card states only what is
    declared here (none of them when left out), so it never claims, say, expert
    work that nobody declared. ``corrections`` replaces the card's default
    paragraph on how a speaker proposes a correction.
    """

    summary: NonEmpty
    collection_process: NonEmpty
    intended_use: NonEmpty
    limitations: NonEmpty
    corrections: NonEmpty | None = None
    annotations_creators: list[AnnotationsCreator] = Field(default_factory=list)
    language_creators: list[LanguageCreator] = Field(default_factory=list)
    source_datasets: list[SourceDataset] = Field(
        default_factory=list, description="'original', or 'extended|<dataset>' and the like"
    )


class DatasetSpec(Strict):
    """Where a benchmark's items are and how they are licensed."""

    name: Slug
    items: NonEmpty = Field(description="Path of the JSONL items file, relative to the YAML file")
    license: License
    card: CardText


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


class AnswerBudget(Strict):
    """Per-language budgets of new tokens, from the references' lengths in the model's tokens.

    Scripts cost different numbers of tokens for the same content (a Tamil
    sentence takes several times the tokens of a Swahili one under most
    tokenizers), so one ``max_tokens`` for every language cuts some
    languages' answers long before others'. With a budget, each language's
    limit is ``multiple`` × the ``quantile`` (1.0: the longest) of its
    references' lengths, counted with the evaluated model's own tokenizer
    when the job is created, rounded up, at least ``min_tokens`` and at most
    the decoding's ``max_tokens``. Without the model's ``tokenizer.json``,
    lengths are counted in UTF-8 bytes plus one, which no tokenizer exceeds.
    The rule is part of the generation identity; the numbers it gives for a
    model are stored with that model's job (``max_tokens_by_language``).
    """

    multiple: float = Field(default=1.5, ge=1.0, le=10.0)
    quantile: float = Field(default=1.0, gt=0.0, le=1.0)
    min_tokens: int = Field(default=16, ge=1, le=4096)


class DecodingSpec(Strict):
    """Decoding parameters. Evaluations are greedy with a fixed seed.

    ``max_tokens`` is the most new tokens an answer gets; with ``budget``
    (generation benchmarks), each language gets its own limit up to it.
    """

    max_tokens: int = Field(default=64, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=0.0)
    seed: int = 0
    budget: AnswerBudget | None = Field(
        default=None,
        description="Per-language limits from the references' token lengths (generation only)",
    )

    @model_serializer(mode="wrap")
    def _leave_out_no_budget(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Decoding without a budget dumps as it always did: existing
        # generation identities are unchanged.
        data = handler(self)
        if isinstance(data, dict) and self.budget is None:
            data.pop("budget", None)
        return data

    @model_validator(mode="after")
    def _budget_within_max_tokens(self) -> DecodingSpec:
        if self.budget is not None and self.budget.min_tokens > self.max_tokens:
            raise FieldProblems(
                [
                    (
                        "budget.min_tokens",
                        f"{self.budget.min_tokens} is more than max_tokens {self.max_tokens}; "
                        "lower it or raise max_tokens",
                    )
                ]
            )
        return self


def _refuse_booleans(value: object) -> object:
    # Numbers may come as text (the web form), but true is not 1.
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


_NOT_A_BOOLEAN = BeforeValidator(_refuse_booleans)


class DecodingOverrides(Strict):
    """What a submission may change about a benchmark's decoding, within these bounds.

    ``max_tokens`` may not exceed the benchmark's own ``max_tokens`` (checked by
    ``apply_decoding_overrides``). Overridden decoding is another generation
    identity: its job is scored but not ranked beside the benchmark's own.
    """

    temperature: Annotated[float | None, _NOT_A_BOOLEAN] = Field(default=None, ge=0.0, le=2.0)
    top_p: Annotated[float | None, _NOT_A_BOOLEAN] = Field(default=None, gt=0.0, le=1.0)
    max_tokens: Annotated[int | None, _NOT_A_BOOLEAN] = Field(default=None, ge=1, le=4096)


def apply_decoding_overrides(
    decoding: dict[str, object], overrides: DecodingOverrides
) -> dict[str, object]:
    """The benchmark's decoding with the overrides applied.

    A value equal to the benchmark's default changes nothing (``top_p`` 1.0 is
    the default), so such a submission shares the benchmark's own job.

    Raises:
        FieldProblems: ``max_tokens`` above the benchmark's.
    """
    limit = int(str(decoding.get("max_tokens", 64)))
    if overrides.max_tokens is not None and overrides.max_tokens > limit:
        raise FieldProblems(
            [("max_tokens", f"{overrides.max_tokens} is more than this benchmark's {limit}")]
        )
    merged = dict(decoding)
    for key, value in overrides.model_dump(exclude_none=True).items():
        if key == "top_p" and value == 1.0:
            merged.pop("top_p", None)
        else:
            merged[key] = value
    return merged


LanguageTag = Annotated[str, AfterValidator(_check_language)]
_DATASET_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9-]{1,62}[a-z0-9])@(?P<hash>[0-9a-f]{64})$")


class DatasetRef(Strict):
    """A released dataset version named ``name@<content hash>`` (64 hex digits)."""

    name: str
    content_hash: str

    @classmethod
    def parse(cls, text: str) -> DatasetRef:
        """Read ``name@hash``.

        Raises:
            ValueError: naming the expected form.
        """
        match = _DATASET_REF.match(text)
        if match is None:
            raise ValueError(
                f"{text[:80]!r} is not a dataset reference; write the released version as "
                "name@<64-hex content hash> (see `sabha datasets list`), or give the items inline "
                "with name, items, license and card"
            )
        return cls(name=match["name"], content_hash=match["hash"])

    def __str__(self) -> str:
        return f"{self.name}@{self.content_hash}"


def _dataset_ref(value: object) -> object:
    return DatasetRef.parse(value) if isinstance(value, str) else value


# Tags of the two forms of ``dataset:``; error paths leave them out (see the loader).
INLINE_TAG, REF_TAG = "§inline", "§ref"


def _dataset_kind(value: object) -> str:
    return REF_TAG if isinstance(value, str | DatasetRef) else INLINE_TAG


class DatasetFileSpec(Strict):
    """A dataset file: rows and card metadata, released without any benchmark.

    Benchmarks then refer to the released version as ``name@<content hash>``.
    """

    name: Slug
    title: Title
    license: License
    task: Literal["generation", "classification"]
    languages: list[LanguageTag] = Field(min_length=1)
    labels: list[Label] = Field(default_factory=list)
    attributes: dict[AttributeName, list[AttributeValue]] = Field(default_factory=dict)
    items: NonEmpty = Field(description="Path of the JSONL items file, relative to this file")
    card: CardText

    @field_validator("labels")
    @classmethod
    def _labels_fit_task(cls, labels: list[str], info: ValidationInfo) -> list[str]:
        task = info.data.get("task")
        if task == "classification" and len(set(labels)) < 2:
            raise ValueError("a classification dataset needs at least two distinct labels")
        if task == "generation" and labels:
            raise ValueError("labels are only for classification datasets; remove them")
        return labels


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
    dataset: Annotated[
        Annotated[DatasetSpec, Tag(INLINE_TAG)]
        | Annotated[DatasetRef, BeforeValidator(_dataset_ref), Tag(REF_TAG)],
        Discriminator(_dataset_kind),
    ] = Field(
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
        task = info.data.get("task")
        if task == "classification" and len(set(labels)) < 2:
            raise ValueError("a classification benchmark needs at least two distinct labels")
        if task == "generation" and labels:
            raise ValueError("labels are only for classification benchmarks; remove them")
        return labels

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
    language: Annotated[str, AfterValidator(_check_language)]
    region: Annotated[str, AfterValidator(_check_region)] | None = None
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
