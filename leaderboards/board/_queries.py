"""Pages of a leaderboard: one query over the read model's ranked rows."""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from sabha.platform.catalog import get_benchmark
from sabha.platform.domain import (
    Benchmark,
    Dataset,
    DatasetVersion,
    LeaderboardEntry,
    LeaderboardGeneration,
    as_utc,
)
from sabha.platform.errors import NotFoundError

from ..judgements import COMMUNITY_METRICS
from ..metrics import get_metric
from ..public import (
    TIED_NAMED,
    LeaderboardColumns,
    LeaderboardPage,
    LeaderboardRow,
    ModelPublic,
    tie_fields,
)
from ._cards import benchmark_public_of
from ._read_model import JUDGE_SUFFIX

__all__ = ["PER_PAGE", "leaderboard", "leaderboard_version", "read_model_version"]

PER_PAGE = 50


def _community_label(key: str) -> str:
    metric = key.removesuffix(JUDGE_SUFFIX)
    label = COMMUNITY_METRICS[metric].label
    return label if metric == key else f"{label}, judge model"


def _columns(benchmark: Benchmark, rows: list[LeaderboardRow]) -> LeaderboardColumns:
    metrics = [*benchmark.metrics, *(["unparseable"] if benchmark.task == "classification" else [])]
    groups: dict[str, set[str]] = {}
    for row in rows:
        for name, cells in row.breakdowns.items():
            groups.setdefault(name, set()).update(cells)
    language_order = [tag for tag in benchmark.languages if tag in groups.get("language", set())]
    community = [
        key
        for metric in COMMUNITY_METRICS
        for key in (metric, f"{metric}{JUDGE_SUFFIX}")
        if any(key in row.community for row in rows)
    ]
    return LeaderboardColumns(
        metrics=metrics,
        metric_labels={
            **{m: get_metric(m).label for m in metrics},
            **{m: _community_label(m) for m in community},
        },
        higher_is_better={
            **{m: get_metric(m).higher_is_better for m in metrics},
            **{
                m: COMMUNITY_METRICS[m.removesuffix(JUDGE_SUFFIX)].higher_is_better
                for m in community
            },
        },
        breakdowns={
            name: (language_order if name == "language" else sorted(values))
            for name, values in groups.items()
        },
        community=community,
    )


def leaderboard_version(session: Session, benchmark_name: str) -> tuple[object, ...]:
    """A key that changes whenever the benchmark's leaderboard pages would change.

    Pages are rebuilt only when a scoring run lands (or is withdrawn) or the
    definition's wording changes, so the site can cache rendered pages under
    this key. Every rebuild raises the benchmark's ``LeaderboardGeneration``.

    Raises:
        NotFoundError: unknown benchmark.
    """
    benchmark = get_benchmark(session, benchmark_name)
    generation = session.get(LeaderboardGeneration, benchmark.id)
    return (
        benchmark.id,
        benchmark.title,
        benchmark.description,
        benchmark.primary_metric,
        tuple(benchmark.languages),
        generation.generation if generation is not None else 0,
    )


def read_model_version(session: Session) -> tuple[object, ...]:
    """A key that changes whenever any leaderboard or current benchmark definition changes.

    For pages built from several leaderboards (a language, a model), cached under it.
    Two small queries: the sum of every benchmark's rebuild count (each rebuild raises
    one), and the benchmarks' definitions.
    """
    rebuilds, boards = session.exec(
        select(func.coalesce(func.sum(LeaderboardGeneration.generation), 0), func.count())
    ).one()
    definitions = [
        (b.id, b.title, b.description, b.primary_metric, tuple(b.languages), b.is_current)
        for b in session.exec(select(Benchmark).order_by(col(Benchmark.id)))
    ]
    return rebuilds, boards, tuple(definitions)


def leaderboard(
    session: Session,
    benchmark_name: str,
    page: int = 1,
    per_page: int = PER_PAGE,
    tied_names: int | None = TIED_NAMED,
) -> LeaderboardPage:
    """One page of a benchmark's ranked table, best first (``tied_names``: how many tied
    rivals each row names; None: all, as the CSV export has them).

    Raises:
        NotFoundError: unknown benchmark, or a page past the end.
    """
    benchmark = get_benchmark(session, benchmark_name)
    found = session.exec(
        select(DatasetVersion, Dataset)
        .join(Dataset, col(Dataset.id) == DatasetVersion.dataset_id)
        .where(DatasetVersion.id == benchmark.dataset_version_id)
    ).one()
    total = session.exec(
        select(func.count())
        .select_from(LeaderboardEntry)
        .where(LeaderboardEntry.benchmark_id == benchmark.id)
    ).one()
    if page < 1 or (page > 1 and (page - 1) * per_page >= total):
        raise NotFoundError(
            f"Page {page} of {benchmark_name!r} is empty ({total} models, {per_page} a page).",
            "Go back to page 1.",
        )
    entries = session.exec(
        select(LeaderboardEntry)
        .where(LeaderboardEntry.benchmark_id == benchmark.id)
        .order_by(col(LeaderboardEntry.position))
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    rows = [
        LeaderboardRow(
            rank=entry.rank,
            position=entry.position,
            model=ModelPublic.model_validate(entry.model),
            job_id=entry.job_id,
            run_url=f"/jobs/{entry.job_id}",
            finished_at=as_utc(entry.finished_at),
            scores=entry.cells["scores"],
            breakdowns=entry.cells["breakdowns"],
            **tie_fields(entry.tied_with, tied_names),
            failed_items=entry.cells.get("failed_items", 0),
            failure_reasons=entry.cells.get("failure_reasons", {}),
            community=entry.cells.get("community", {}),
        )
        for entry in entries
    ]
    return LeaderboardPage(
        benchmark=benchmark_public_of(benchmark, *found),
        columns=_columns(benchmark, rows),
        rows=rows,
        page=page,
        per_page=per_page,
        total=int(total),
    )
