"""The typed schema of benchmark files and their item rows.

Text limits mirror the database columns of ``platform/domain.py`` (a value the
schema accepts always fits), and every free-text field is bounded by
``max_field_chars`` (``SABHA_MAX_FIELD_CHARS``), passed in the validation
context as ``{"max_field_chars": n}``.
"""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Annotated, Literal

import regex
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationInfo,
    field_validator,
)

from ..languages import check_language_tag, check_region

__all__ = [
    "DatasetFileSpec",
    "DatasetRef",
    "LIMITS",
    "METRIC_TASKS",
    "RESERVED_COLUMNS",
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
LIMITS = {
    "dataset_name": 100,  # Dataset.name
    "title": 200,  # Dataset.title, Benchmark.title
    "license": 50,  # Dataset.license
    "item_id": 100,  # Item.key
    "language": 35,  # Item.language
    "dialect": 100,  # Item.dialect
    "region": 10,  # Item.region
    "split": 20,  # Item.split
    "label": 100,  # Item.label
    "benchmark_name": 100,  # Benchmark.name
    "task": 30,  # Benchmark.task
    "metric": 30,  # Benchmark.primary_metric, Score.metric
    "attribute_name": 30,  # Score.breakdown
    "attribute_value": 100,  # Score.group
    "input_name": 64,  # a Parquet column name
}
_WHERE = {
    "dataset_name": "Dataset.name",
    "title": "Dataset.title",
    "license": "Dataset.license",
    "item_id": "Item.key",
    "dialect": "Item.dialect",
    "label": "Item.label",
    "metric": "Score.metric",
    "attribute_name": "Score.breakdown",
    "attribute_value": "Score.group",
    "input_name": "a column name",
}


class FieldProblems(ValueError):
    """Problems in parts of the value being validated, each named by its field under it.

    The loader appends each field to the location pydantic reports, so a rule
    checked on ``answer`` can name ``answer.aliases.unsafe``.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))
        self.problems = problems


def _clean_text(value: str, info: ValidationInfo | None, limit: str | None) -> str:
    """Refuse NUL, lone surrogates and over-long values; see the module docstring."""
    nul = value.find("\x00")
    if nul >= 0:
        raise ValueError(
            f"contains a NUL character (U+0000) at position {nul + 1}; "
            "PostgreSQL cannot store it: remove it"
        )
    surrogate = re.search("[\ud800-\udfff]", value)
    if surrogate:
        raise ValueError(
            f"contains a lone surrogate (U+{ord(surrogate.group()):04X}) at position "
            f"{surrogate.start() + 1}, which is not valid Unicode; fix the \\u escape"
        )
    if limit is not None and len(value) > LIMITS[limit]:
        column = _WHERE.get(limit, f"the {limit} column")
        raise ValueError(f"{len(value):,} characters; the limit is {LIMITS[limit]:,} ({column})")
    context = info.context if info is not None else None
    most = (context or {}).get("max_field_chars")
    if most is not None and len(value) > most:
        raise ValueError(
            f"{len(value):,} characters; the limit is {most:,} (SABHA_MAX_FIELD_CHARS)"
        )
    return value


def _text(limit: str | None = None) -> AfterValidator:
    def check(value: str, info: ValidationInfo) -> str:
        return _clean_text(value, info, limit)

    return AfterValidator(check)


_Stripped = StringConstraints(min_length=1, strip_whitespace=True)
NonEmpty = Annotated[str, _Stripped, _text()]


def _check_slug(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}[a-z0-9]", name):
        raise ValueError(
            f"{name[:80]!r} is not a valid name; use 3 to 64 lower-case letters, digits and "
            "'-', starting and ending with a letter or digit, e.g. 'kisan-advisory'"
        )
    return name


Slug = Annotated[str, _text(), AfterValidator(_check_slug)]
Title = Annotated[str, _Stripped, _text("title")]
License = Annotated[str, _Stripped, _text("license")]
Label = Annotated[str, _Stripped, _text("label")]
AttributeValue = Annotated[str, _Stripped, _text("attribute_value")]
Dialect = Annotated[str, _Stripped, _text("dialect")]


def _check_language(tag: str) -> str:
    _clean_text(tag, None, None)
    return check_language_tag(tag)


def _check_region(code: str) -> str:
    _clean_text(code, None, None)
    return check_region(code)


def _check_column_name(kind: str, limit: str, pattern: str, example: str) -> AfterValidator:
    def check(name: str) -> str:
        _clean_text(name, None, None)
        if name in RESERVED_COLUMNS:
            raise ValueError(
                f"{name!r} is a reserved column name; rename the {kind} "
                f"(e.g. '{name}_{example}')"
                + (" and the template placeholder" if kind == "input field" else "")
            )
        if len(name) > LIMITS[limit]:
            raise ValueError(
                f"{len(name):,} characters; the limit is {LIMITS[limit]} ({_WHERE[limit]})"
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
    _clean_text(item_id, None, None)
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
    license: License
    card: CardText


class PromptSpec(_Strict):
    """The prompt template; ``{field}`` placeholders name fields of an item's ``input``."""

    template: NonEmpty
    system: Annotated[str, _text()] | None = None
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


class JudgeSpec(_Strict):
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


class DecodingSpec(_Strict):
    """Decoding parameters. Evaluations are greedy with a fixed seed."""

    max_tokens: int = Field(default=64, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=0.0)
    seed: int = 0


def _refuse_booleans(value: object) -> object:
    # Numbers may come as text (the web form), but true is not 1.
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


_NOT_A_BOOLEAN = BeforeValidator(_refuse_booleans)


class DecodingOverrides(_Strict):
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


def _check_pattern(pattern: str) -> str:
    try:
        compiled = regex.compile(pattern)
    except regex.error as exc:
        raise ValueError(
            f"{pattern!r} is not a valid regular expression ({exc}); fix it, e.g. "
            r"'label:\s*(.+)'"
        ) from exc
    if compiled.groups != 1:
        raise ValueError(
            f"{pattern!r} has {compiled.groups} capture groups; it needs exactly one, around "
            r"the answer, e.g. 'label:\s*(\w+)' (write other groups as (?:...))"
        )
    return pattern


AnswerPattern = Annotated[str, Field(min_length=1), _text(), AfterValidator(_check_pattern)]
Alias = Annotated[str, _Stripped, _text("label")]
Normalization = Literal["nfc", "nfkc", "casefold", "strip"]


def _default_normalization() -> list[Normalization]:
    return ["nfc", "casefold", "strip"]


class AnswerSpec(_Strict):
    """How a classification answer is read (``leaderboards.extraction.extract_label``).

    The answer is normalised (``normalize``, in order); the first of ``patterns``
    that matches gives the candidate (its one group), else the candidate is the
    answer's first non-empty line. Labels and ``aliases`` are normalised the
    same way and matched as whole tokens (no letter, mark, digit or ``_`` on
    either side), longest first, each match consuming its span, so an alias
    ``not safe`` of ``unsafe`` wins over the label ``safe``. ``match`` decides
    what counts:

    - ``phrase`` (default): exactly one label is mentioned, and every mention
      begins a phrase (the candidate's start, or right after punctuation), so
      ``not safe`` is never read as ``safe``.
    - ``contains``: exactly one label is mentioned, anywhere.
    - ``exact``: the candidate, stripped of surrounding punctuation and
      whitespace, is a label or alias.

    Anything else reads as ``INVALID_LABEL``.
    """

    normalize: list[Normalization] = Field(
        default_factory=_default_normalization,
        description="Steps applied in order to the answer, labels and aliases",
    )
    patterns: list[AnswerPattern] = Field(
        default_factory=list,
        max_length=20,
        description="Regexes with one group, tried in order; the first match gives the "
        "candidate (default: the answer's first non-empty line)",
    )
    aliases: dict[str, list[Alias]] = Field(
        default_factory=dict, description="label -> other spellings that mean it"
    )
    match: Literal["phrase", "contains", "exact"] = Field(
        default="phrase",
        description="phrase: exactly one label is mentioned and every mention begins a "
        "phrase (start, or after punctuation), so 'not safe' is never read as 'safe'; "
        "contains: exactly one label is mentioned anywhere; exact: the candidate, stripped "
        "of surrounding punctuation, is a label or alias",
    )

    def normalize_text(self, text: str) -> str:
        """Apply the ``normalize`` steps, in order, to an answer, label or alias."""
        for step in self.normalize:
            if step == "nfc":
                text = unicodedata.normalize("NFC", text)
            elif step == "nfkc":
                text = unicodedata.normalize("NFKC", text)
            elif step == "casefold":
                text = text.casefold()
            else:
                text = text.strip()
        return text

    def forms(self, labels: list[str]) -> dict[str, str]:
        """Every normalised spelling (labels and aliases, whitespace collapsed) -> its label."""
        forms: dict[str, str] = {}
        for label in labels:
            for spelling in [label, *self.aliases.get(label, [])]:
                forms.setdefault(" ".join(self.normalize_text(spelling).split()), label)
        return forms

    def problems_with_labels(self, labels: list[str]) -> list[tuple[str, str]]:
        """Aliases of undeclared labels, and spellings that mean two labels, as (field, message)."""
        problems = [
            (f"aliases.{name}", f"{name!r} is not a declared label; declared: {labels}")
            for name in self.aliases
            if name not in labels
        ]
        owner: dict[str, str] = {}
        for label in labels:
            for index, spelling in enumerate([label, *self.aliases.get(label, [])]):
                form = " ".join(self.normalize_text(spelling).split())
                where = f"aliases.{label}.{index - 1}" if index else "labels"
                if not form:
                    problems.append((where, f"{spelling!r} is empty once normalised"))
                elif owner.setdefault(form, label) != label:
                    problems.append(
                        (
                            where,
                            f"{spelling!r} already means {owner[form]!r}; an alias may "
                            "name one label only: remove it from one of them",
                        )
                    )
        return problems


LanguageTag = Annotated[str, AfterValidator(_check_language)]
_DATASET_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9-]{1,62}[a-z0-9])@(?P<hash>[0-9a-f]{64})$")


class DatasetRef(_Strict):
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


class DatasetFileSpec(_Strict):
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


class BenchmarkSpec(_Strict):
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


class ItemSpec(_Strict):
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
