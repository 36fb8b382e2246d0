"""Pages per language: the best models for one language across every benchmark that has it.

Built from the read model (``leaderboard_entry``): each benchmark's language
breakdown of its primary metric. Models are ordered by their score in that
language; models whose 95% intervals in that language overlap share a rank
(the read model keeps paired resamples only for the overall score, so a
language's ranks are by interval, the more cautious rule).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from sabha.platform.domain import Benchmark, Dataset, DatasetVersion, LeaderboardEntry
from sabha.platform.errors import NotFoundError
from sabha.platform.languages import autonym, describe_language, text_direction

from ..public import Cell, LanguageBoard, LanguagePage, LanguageRow, LanguageSummary, ModelPublic
from ..ranking import RankingEntry, rank_by_sorting
from ._cards import benchmark_public_of

__all__ = ["language_page", "language_summaries"]


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


def language_page(session: Session, tag: str) -> LanguagePage:
    """The models scored in ``tag`` on every current benchmark that has it, best first.

    Raises:
        NotFoundError: no current benchmark measures that language.
    """
    benchmarks = [found for found in _current_benchmarks(session) if tag in found[0].languages]
    if not benchmarks:
        known = ", ".join(summary.tag for summary in language_summaries(session))
        raise NotFoundError(
            f"No benchmark measures the language {tag!r}.",
            f"Pick one of: {known}." if known else "No benchmark has been loaded yet.",
        )
    entries: dict[int, list[LeaderboardEntry]] = {}
    for entry in session.exec(
        select(LeaderboardEntry).where(
            col(LeaderboardEntry.benchmark_id).in_([b.id for b, _, _ in benchmarks])
        )
    ).all():
        entries.setdefault(entry.benchmark_id, []).append(entry)
    boards = []
    for benchmark, version, dataset in benchmarks:
        published = benchmark_public_of(benchmark, version, dataset)
        scored = {}
        for entry in entries.get(benchmark.id or 0, []):
            cell = entry.cells["breakdowns"].get("language", {}).get(tag)
            if cell is not None:
                scored[entry.model["name"]] = (entry, Cell.model_validate(cell))
        ranked = rank_by_sorting(
            [
                RankingEntry(name, cell.value, ci_low=cell.ci_low, ci_high=cell.ci_high)
                for name, (_, cell) in scored.items()
            ],
            higher_is_better=published.higher_is_better,
        )
        rows = [
            LanguageRow(
                rank=row.rank,
                tied_with=row.tied_with,
                model=ModelPublic.model_validate(scored[row.key][0].model),
                score=scored[row.key][1],
                job_id=scored[row.key][0].job_id,
                run_url=f"/jobs/{scored[row.key][0].job_id}",
            )
            for row in ranked
        ]
        boards.append(LanguageBoard(benchmark=published, rows=rows))
    return LanguagePage(
        tag=tag,
        name=describe_language(tag),
        autonym=autonym(tag),
        direction=text_direction(tag),
        boards=boards,
    )
