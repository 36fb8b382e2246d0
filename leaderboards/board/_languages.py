"""Pages per language: the best models for one language across every benchmark that has it.

Built from the read model (``leaderboard_entry``): each benchmark's language
breakdown of its primary metric. Models are ordered by their score in that
language; models whose 95% intervals in that language overlap share a rank
(the read model keeps paired resamples only for the overall score, so a
language's ranks are by interval, the more cautious rule).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from sabha.platform.domain import Benchmark, Dataset, DatasetVersion, LeaderboardEntry
from sabha.platform.errors import NotFoundError
from sabha.platform.languages import autonym, describe_language, text_direction

from ..public import (
    Cell,
    LanguageBoard,
    LanguagePage,
    LanguageRow,
    LanguageSummary,
    ModelPublic,
    tie_fields,
)
from ..ranking import RankingEntry, rank_by_sorting
from ._cards import benchmark_public_of

__all__ = ["LANGUAGE_TOP", "language_page", "language_summaries"]

LANGUAGE_TOP = 10
"""Rows of each benchmark a language's page shows (the best); the rest are a page away."""
PER_PAGE = 50  # one benchmark's board in a language, a page at a time


def _current_benchmarks(session: Session) -> list[tuple[Benchmark, DatasetVersion, Dataset]]:
    found = session.exec(
        select(Benchmark, DatasetVersion, Dataset)
        .join(DatasetVersion, col(DatasetVersion.id) == Benchmark.dataset_version_id)
        .join(Dataset, col(Dataset.id) == DatasetVersion.dataset_id)
        .where(col(Benchmark.is_current))
        .order_by(col(Benchmark.name))
    ).all()
    return [(benchmark, version, dataset) for benchmark, version, dataset in found]


def language_summaries(session: Session) -> list[LanguageSummary]:
    """Every language some current benchmark measures, with how many benchmarks do."""
    counts: dict[str, int] = {}
    for benchmark, _, _ in _current_benchmarks(session):
        for tag in benchmark.languages:
            counts[tag] = counts.get(tag, 0) + 1
    return [
        LanguageSummary(
            tag=tag,
            name=describe_language(tag),
            autonym=autonym(tag),
            direction=text_direction(tag),
            benchmarks=counts[tag],
        )
        for tag in sorted(counts)
    ]


def language_page(
    session: Session, tag: str, benchmark: str | None = None, page: int = 1
) -> LanguagePage:
    """The models scored in ``tag`` on every current benchmark that has it, best first.

    Each board holds its best ``LANGUAGE_TOP`` models; with ``benchmark``,
    only that benchmark's board, ``page`` of its models (50 a page).

    Raises:
        NotFoundError: no current benchmark measures that language (or ``benchmark``
            does not), or a page past the end.
    """
    measuring = [found for found in _current_benchmarks(session) if tag in found[0].languages]
    if not measuring:
        known = ", ".join(summary.tag for summary in language_summaries(session))
        raise NotFoundError(
            f"No benchmark measures the language {tag!r}.",
            f"Pick one of: {known}." if known else "No benchmark has been loaded yet.",
        )
    benchmarks = [found for found in measuring if benchmark in (None, found[0].name)]
    if not benchmarks:
        names = ", ".join(found[0].name for found in measuring)
        raise NotFoundError(
            f"No current benchmark named {benchmark!r} measures {tag!r}.",
            f"Pick one of: {names}.",
        )
    per_page = LANGUAGE_TOP if benchmark is None else PER_PAGE
    # Only the language's cell of each row (not every cell): the rows of 1,000 models hold MBs.
    cell_of = col(LeaderboardEntry.cells)[("breakdowns", "language", tag)]
    entries: dict[int, list[tuple[Any, int, Any]]] = {}
    for benchmark_id, model, job_id, cell in session.exec(
        select(
            LeaderboardEntry.benchmark_id, LeaderboardEntry.model, LeaderboardEntry.job_id, cell_of
        ).where(
            col(LeaderboardEntry.benchmark_id).in_([b.id for b, _, _ in benchmarks]),
            cell_of.is_not(None),
        )
    ).all():
        entries.setdefault(benchmark_id, []).append((model, job_id, cell))
    boards = []
    for measured, version, dataset in benchmarks:
        published = benchmark_public_of(measured, version, dataset)
        scored = {
            model["name"]: (model, job_id, Cell.model_validate(cell))
            for model, job_id, cell in entries.get(measured.id or 0, [])
            if cell is not None
        }
        ranked = rank_by_sorting(
            [
                RankingEntry(name, cell.value, ci_low=cell.ci_low, ci_high=cell.ci_high)
                for name, (_, _, cell) in scored.items()
            ],
            higher_is_better=published.higher_is_better,
        )
        if page > 1 and (page - 1) * per_page >= len(ranked):
            raise NotFoundError(
                f"Page {page} of {measured.name!r} in {tag!r} is empty ({len(ranked)} models, "
                f"{per_page} a page).",
                "Go back to page 1.",
            )
        rows = [
            LanguageRow(
                rank=row.rank,
                **tie_fields(row.tied_with),
                model=ModelPublic.model_validate(scored[row.key][0]),
                score=scored[row.key][2],
                job_id=scored[row.key][1],
                run_url=f"/jobs/{scored[row.key][1]}",
            )
            for row in ranked[(page - 1) * per_page : page * per_page]
        ]
        boards.append(
            LanguageBoard(
                benchmark=published, rows=rows, page=page, per_page=per_page, total=len(ranked)
            )
        )
    return LanguagePage(
        tag=tag,
        name=describe_language(tag),
        autonym=autonym(tag),
        direction=text_direction(tag),
        boards=boards,
    )
