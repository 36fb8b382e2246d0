"""What the site and the JSON API publish: pydantic ``*Public`` models.

Pages, JSON and CSV are all built from these, and they are the schema the
OpenAPI document will describe. They never carry table internals (token
hashes, private items).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AnswerLengthPublic",
    "BenchmarkPublic",
    "BenchmarkSummary",
    "Cell",
    "CommunityCell",
    "ComparedBenchmark",
    "DataCardPublic",
    "DatasetPage",
    "DatasetPublic",
    "DatasetVersionPublic",
    "JudgedCell",
    "LanguageBoard",
    "LanguagePage",
    "LanguageRow",
    "LanguageSummary",
    "LeaderboardColumns",
    "LeaderboardPage",
    "LeaderboardRow",
    "ModelComparison",
    "ModelPage",
    "ModelPublic",
    "ModelScore",
    "RunPublic",
    "SamplePublic",
    "ScorePublic",
    "ShardPublic",
    "TIED_NAMED",
    "VersionedScore",
    "tie_fields",
]


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


_NO_INTERVAL = (
    "null when too_few: the group has fewer items than the minimum, so no interval is "
    "estimated (pages show 'too few items', CSV leaves it empty)"
)


TIED_NAMED = 5
"""How many of a model's tied rivals a page names: a crowded board ties hundreds of models,
and naming all of them in every row made pages grow with the square of the models."""
_TIED_WITH = (
    f"The first {TIED_NAMED} (best first) of the other models sharing this rank; the rows "
    "with the same rank are the whole group"
)
_TIED_COUNT = "How many other models share this rank (their scores cannot be told apart)"


def tie_fields(tied_with: list[str], names: int | None = TIED_NAMED) -> dict[str, Any]:
    """``tied_with`` (the first ``names``; None: all) and ``tied_count`` of a row."""
    return {"tied_with": list(tied_with[:names]), "tied_count": len(tied_with)}


def _without_interval(data: Any) -> Any:
    """A too-few group has no interval, whatever a stored row says (older ones held value twice)."""
    if isinstance(data, dict) and data.get("too_few"):
        return {**data, "ci_low": None, "ci_high": None}
    return data


class Cell(_Public):
    """One score with its 95% confidence interval: the one cell type of pages, JSON and CSV.

    ``too_few`` groups have fewer items than the minimum: their value is
    shown without an interval (``ci_low`` and ``ci_high`` are null).
    """

    value: float
    ci_low: float | None = Field(description=f"Lower end of the 95% interval; {_NO_INTERVAL}")
    ci_high: float | None = Field(description=f"Upper end of the 95% interval; {_NO_INTERVAL}")
    n: int
    too_few: bool = False

    _no_interval_when_too_few = model_validator(mode="before")(_without_interval)


class JudgedCell(Cell):
    """A score from judgements: ``n`` judged items, ``judgements`` behind them.

    A judge model's cell carries its agreement with people (Krippendorff's
    alpha, None while undefined) over ``agreement_items`` items both judged.
    """

    judgements: int
    agreement: float | None = None
    agreement_items: int = 0


class CommunityCell(JudgedCell):
    """A score from judgements of a model's answers (people's, or a judge model's).

    ``breakdowns`` holds the same per language and per hazard where known.
    """

    judge: str = "people"
    breakdowns: dict[str, dict[str, JudgedCell]] = Field(default_factory=dict)


class ModelPublic(_Public):
    """A model as published: where it comes from, at which revision."""

    name: str
    source: str
    repo_id: str | None = None
    revision: str | None = None
    smoke_test: bool = False
    description: str | None = None


class DatasetPublic(_Public):
    """The released dataset version a benchmark measures on."""

    name: str
    license: str
    version: str
    items: int
    released_at: datetime | None
    card_url: str


class AgreementPublic(_Public):
    """How far annotators agreed on one field in one language, as the version's card states."""

    language: str
    field: str
    statistic: str = Field(description="Krippendorff alpha, or chrF (pairwise) for free text")
    value: float | None = Field(description="null where undefined (too few shared items)")
    items: int


class DatasetVersionPublic(_Public):
    """One released version of a dataset: its items per public split and language.

    ``held_out`` counts the items of a private held-out split (kept on the
    server, never listed or exported); ``benchmarks`` are the current
    benchmarks that measure on this version.
    """

    version: str
    released_at: datetime | None
    items: int
    languages: list[str]
    splits: dict[str, dict[str, int]] = Field(default_factory=dict)
    held_out: int = 0
    card_url: str
    parquet_url: str | None = Field(
        default=None, description="The public items as Parquet; null where not on this server"
    )
    benchmarks: list[str] = Field(default_factory=list)
    agreement: list[AgreementPublic] = Field(
        default_factory=list,
        description="Annotator agreement per language and field (annotated releases only)",
    )


class DatasetPage(_Public):
    """A dataset: every released version, newest first."""

    name: str
    title: str
    license: str
    versions: list[DatasetVersionPublic]
    items_url: str | None = Field(
        default=None,
        description="Its public items, each with its annotation history (annotated datasets)",
    )


class DataCardPublic(_Public):
    """A released dataset version's data card (Hugging Face dataset-card markdown)."""

    dataset: DatasetPublic
    card_markdown: str


class BenchmarkPublic(_Public):
    """One benchmark definition and its two identities."""

    name: str
    version: str
    title: str
    description: str
    task: str
    languages: list[str]
    metrics: list[str]
    primary_metric: str
    primary_metric_label: str
    higher_is_better: bool
    breakdowns: list[str]
    labels: list[str]
    dataset: DatasetPublic
    generation_hash: str
    scoring_hash: str
    definition_hash: str


class BenchmarkSummary(BenchmarkPublic):
    """A benchmark on the index page, with the number of ranked models."""

    models: int


class LeaderboardColumns(_Public):
    """The columns of a leaderboard table."""

    metrics: list[str]
    metric_labels: dict[str, str]
    higher_is_better: dict[str, bool]
    breakdowns: dict[str, list[str]]
    community: list[str] = Field(default_factory=list)


class LeaderboardRow(_Public):
    """One ranked model.

    ``rank`` is shared by models the paired bootstrap cannot tell apart
    (``tied_count`` of them, the first ``TIED_NAMED`` named in ``tied_with``;
    the rows of the same rank are the whole group); ``failed_items`` were
    scored as wrong answers.
    """

    rank: int
    position: int
    model: ModelPublic
    job_id: int
    run_url: str
    finished_at: datetime | None
    scores: dict[str, Cell]
    breakdowns: dict[str, dict[str, Cell]]
    tied_with: list[str] = Field(default_factory=list, description=_TIED_WITH)
    tied_count: int = Field(default=0, description=_TIED_COUNT)
    failed_items: int = 0
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    community: dict[str, CommunityCell] = Field(default_factory=dict)


class LeaderboardPage(_Public):
    """One page of a benchmark's leaderboard."""

    benchmark: BenchmarkPublic
    columns: LeaderboardColumns
    rows: list[LeaderboardRow]
    page: int
    per_page: int
    total: int


class VersionedScore(_Public):
    """A model's primary score on one version of a benchmark (``current``: the one shown now)."""

    version: str
    dataset_version: str
    metric_label: str
    score: Cell
    current: bool
    run_url: str


class ModelScore(_Public):
    """A model's place on one benchmark: its rank, primary score and per-language scores.

    ``ranked`` counts the models on that leaderboard; ``languages`` holds the
    primary metric per language tag (empty where the benchmark has no
    language breakdown).
    """

    benchmark: BenchmarkPublic
    rank: int
    ranked: int
    tied_with: list[str] = Field(default_factory=list, description=_TIED_WITH)
    tied_count: int = Field(default=0, description=_TIED_COUNT)
    job_id: int
    run_url: str
    score: Cell | None
    languages: dict[str, Cell] = Field(default_factory=dict)
    history: list[VersionedScore] = Field(
        default_factory=list,
        description="Its score on every version of the benchmark it was ranked on, oldest "
        "first (empty unless there are two or more)",
    )


class ComparedBenchmark(_Public):
    """Two models' primary scores on one benchmark, overall and per language (None: not scored)."""

    benchmark: BenchmarkPublic
    scores: tuple[Cell | None, Cell | None]
    languages: dict[str, tuple[Cell | None, Cell | None]] = Field(default_factory=dict)


class ModelComparison(_Public):
    """Two models side by side on every current benchmark both are ranked on."""

    models: tuple[ModelPublic, ModelPublic]
    benchmarks: list[ComparedBenchmark]


class ModelPage(_Public):
    """A model as the site shows it: where it comes from and every current benchmark it ranks on.

    ``other_revisions`` are the other registered revisions of the same hub
    repository, newest first; ``languages`` every language tag it was scored in.
    """

    model: ModelPublic
    other_revisions: list[ModelPublic] = Field(default_factory=list)
    scores: list[ModelScore] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)


class LanguageSummary(_Public):
    """A language some current benchmark measures (``autonym``: its name in itself)."""

    tag: str
    name: str
    autonym: str
    direction: str = Field(description="ltr or rtl: how the language's script runs")
    benchmarks: int


class LanguageRow(_Public):
    """A model's score in one language of one benchmark; ``rank`` shared where intervals overlap."""

    rank: int
    tied_with: list[str] = Field(default_factory=list, description=_TIED_WITH)
    tied_count: int = Field(default=0, description=_TIED_COUNT)
    model: ModelPublic
    score: Cell
    job_id: int
    run_url: str


class LanguageBoard(_Public):
    """One benchmark's models ordered by their primary metric in one language.

    ``rows`` are one page of them (``page``, ``per_page``) out of ``total``.
    """

    benchmark: BenchmarkPublic
    rows: list[LanguageRow] = Field(default_factory=list)
    page: int = 1
    per_page: int = 50
    total: int = 0


class LanguagePage(_Public):
    """The best models for one language across every current benchmark that measures it."""

    tag: str
    name: str
    autonym: str
    direction: str
    boards: list[LanguageBoard] = Field(default_factory=list)


class ScorePublic(Cell):
    """One score of a run; ``too_few`` groups have no interval (null ``ci_low``, ``ci_high``)."""

    metric: str
    breakdown: str
    group: str


class ShardPublic(_Public):
    """A shard: its accepted run, where that ran, and the pools whose replicas agreed with it.

    ``verified_by`` is empty for a result accepted on its pool's word (the
    operator's own pool, or a proven volunteer pool's result not drawn for a
    check).
    """

    shard: int
    items: int
    status: str
    attempts: int
    pool: str | None
    verified_by: list[str] = Field(default_factory=list)
    finished_at: datetime | None
    executed_on: dict[str, Any]


class SamplePublic(_Public):
    """One output next to what was expected (public splits only)."""

    item: str
    language: str
    prompt: str
    output: str
    error: str | None
    expected: str | None
    history_url: str | None = Field(
        default=None,
        description="Who annotated and reviewed the item (items of annotated datasets)",
    )


class AnswerLengthPublic(_Public):
    """Per language: a run's answers and how many stopped at their budget of new tokens."""

    language: str
    max_tokens: int | None = Field(description="This language's budget of new tokens")
    answers: int = Field(description="Answers of public items (failed items left out)")
    hit_limit: int = Field(description='Answers that ended at the budget (finish_reason "length")')
    share: float = Field(description="hit_limit / answers")


class RunPublic(_Public):
    """The provenance of a run: dataset, model, decoding, where it ran, every score."""

    id: int
    status: str
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    decoding: dict[str, Any]
    generation: dict[str, Any]
    benchmark: BenchmarkPublic
    prompt_template: str
    system_prompt: str | None
    model: ModelPublic
    shards: list[ShardPublic]
    pools: list[str]
    metric_signatures: dict[str, str]
    scores: list[ScorePublic]
    outputs: int
    failed_items: int
    failure_reasons: dict[str, int]
    samples: list[SamplePublic]
    answer_lengths: list[AnswerLengthPublic] = Field(
        default_factory=list,
        description="Per language, the share of answers cut at their budget of new tokens",
    )
