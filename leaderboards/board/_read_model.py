"""The leaderboard read model: every scored model of a benchmark, ranked, one row each.

``rebuild_leaderboard`` runs whenever one of the benchmark's scoring runs (or
community scores) lands; pages then read the stored rows as they are.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, delete, select

from sabha.platform.domain import (
    PEOPLE_JUDGE,
    Benchmark,
    CommunityScore,
    Job,
    LeaderboardEntry,
    LeaderboardGeneration,
    Model,
    Score,
    ScoringRun,
    id_of,
    utcnow,
)

from ..metrics import get_metric
from ..public import Cell, CommunityCell, JudgedCell
from ..ranking import RankingEntry, rank_by_sorting
from ._cards import model_public
from ._cells import judged_cell, score_cell

__all__ = ["JUDGE_SUFFIX", "rebuild_leaderboard"]

JUDGE_SUFFIX = "@judge"  # a judge model's column: ``violation_rate@judge``


@dataclass
class _Scored:
    """One scored model of a benchmark, before ranking."""

    model: Model
    job: Job
    run: ScoringRun
    scores: dict[str, Cell]
    breakdowns: dict[str, dict[str, Cell]]
    community: dict[str, CommunityCell] = field(default_factory=dict)

    def cells(self) -> dict[str, Any]:
        """What the stored row holds: every cell as plain JSON."""
        return {
            "scores": {metric: cell.model_dump() for metric, cell in self.scores.items()},
            "breakdowns": {
                name: {group: cell.model_dump() for group, cell in groups.items()}
                for name, groups in self.breakdowns.items()
            },
            "failed_items": self.run.failed_items,
            "failure_reasons": dict(self.run.failure_reasons),
            "community": {key: cell.model_dump() for key, cell in self.community.items()},
        }


def _resamples(run: ScoringRun, metric: str) -> np.ndarray | None:
    """The stored bootstrap resamples of a run's overall ``metric`` (paired ranking)."""
    if not run.overall_resamples:
        return None
    with np.load(io.BytesIO(run.overall_resamples), allow_pickle=False) as arrays:
        return arrays[metric] if metric in arrays.files else None


def _ranking_entry(name: str, scored: _Scored, metric: str) -> RankingEntry:
    cell = scored.scores[metric]
    # A too-few run publishes no interval; ranking still compares it as a point.
    point = cell.value
    return RankingEntry(
        name,
        point,
        resamples=_resamples(scored.run, metric),
        ci_low=point if cell.ci_low is None else cell.ci_low,
        ci_high=point if cell.ci_high is None else cell.ci_high,
    )


def _community_cells(session: Session, job_ids: list[int]) -> dict[int, dict[str, CommunityCell]]:
    """Each job's community scores as leaderboard cells: overall, with their breakdowns."""
    if not job_ids:
        return {}
    scores = session.exec(
        select(CommunityScore)
        .where(col(CommunityScore.job_id).in_(job_ids))
        .order_by(
            col(CommunityScore.metric), col(CommunityScore.breakdown), col(CommunityScore.group)
        )
    ).all()
    overall: dict[tuple[int, str], tuple[JudgedCell, str]] = {}
    breakdowns: dict[tuple[int, str], dict[str, dict[str, JudgedCell]]] = {}
    for score in scores:
        key = score.metric if score.judge == PEOPLE_JUDGE else f"{score.metric}{JUDGE_SUFFIX}"
        if score.breakdown == "overall":
            overall[score.job_id, key] = (judged_cell(score), score.judge)
        else:
            groups = breakdowns.setdefault((score.job_id, key), {})
            groups.setdefault(score.breakdown, {})[score.group] = judged_cell(score)
    found: dict[int, dict[str, CommunityCell]] = {}
    # A column shows only with its overall score; breakdowns alone are left out.
    for (job_id, key), (cell, judge) in overall.items():
        found.setdefault(job_id, {})[key] = CommunityCell(
            **cell.model_dump(), judge=judge, breakdowns=breakdowns.get((job_id, key), {})
        )
    return found


def _scored_models(session: Session, benchmark: Benchmark) -> dict[str, _Scored]:
    """Every model with a current scoring run of the benchmark's primary metric, by name."""
    runs = session.exec(
        select(ScoringRun, Job, Model)
        .join(Job, col(Job.id) == ScoringRun.job_id)
        .join(Model, col(Model.id) == Job.model_id)
        .where(
            Job.generation_hash == benchmark.generation_hash,
            col(Job.superseded_by_id).is_(None),
            ScoringRun.scoring_hash == benchmark.scoring_hash,
        )
    ).all()
    scores_by_run: dict[int, list[Score]] = {}
    run_ids = [id_of(run) for run, _, _ in runs]
    if run_ids:
        for score in session.exec(select(Score).where(col(Score.scoring_run_id).in_(run_ids))):
            scores_by_run.setdefault(score.scoring_run_id, []).append(score)
    found: dict[str, _Scored] = {}
    for run, job, model in runs:
        scores: dict[str, Cell] = {}
        breakdowns: dict[str, dict[str, Cell]] = {}
        for score in scores_by_run.get(id_of(run), []):
            if score.breakdown == "overall":
                scores[score.metric] = score_cell(score)
            elif score.metric == benchmark.primary_metric:
                breakdowns.setdefault(score.breakdown, {})[score.group] = score_cell(score)
        if benchmark.primary_metric in scores:
            found[model.name] = _Scored(model, job, run, scores, breakdowns)
    return found


def rebuild_leaderboard(session: Session, benchmark: Benchmark) -> int:
    """Rank every scored model of a benchmark and store the rows pages read.

    Returns:
        The number of ranked models.
    """
    # One rebuild of a benchmark's board at a time (PostgreSQL): two jobs of it finished at
    # once by two platform processes would otherwise each delete and insert its rows and
    # meet on the same keys. The second waits, then reads the first one's scores too.
    session.exec(select(Benchmark.id).where(col(Benchmark.id) == benchmark.id).with_for_update())
    primary = get_metric(benchmark.primary_metric)
    rows = _scored_models(session, benchmark)
    community = _community_cells(session, [id_of(row.job) for row in rows.values()])
    for row in rows.values():
        row.community = community.get(id_of(row.job), {})
    ranked = rank_by_sorting(
        [_ranking_entry(name, row, benchmark.primary_metric) for name, row in rows.items()],
        higher_is_better=primary.higher_is_better,
    )
    session.exec(delete(LeaderboardEntry).where(col(LeaderboardEntry.benchmark_id) == benchmark.id))
    for position, entry in enumerate(ranked, start=1):
        row = rows[entry.key]
        session.add(
            LeaderboardEntry(
                benchmark_id=id_of(benchmark),
                model_id=id_of(row.model),
                job_id=id_of(row.job),
                scoring_run_id=id_of(row.run),
                position=position,
                rank=entry.rank,
                tied_with=list(entry.tied_with),
                model=model_public(row.model).model_dump(mode="json"),
                cells=row.cells(),
                finished_at=row.job.finished_at or row.run.created_at,
            )
        )
    _next_generation(session, id_of(benchmark))
    session.flush()
    return len(ranked)


def _next_generation(session: Session, benchmark_id: int) -> None:
    """Raise the benchmark's leaderboard generation (the cached pages' key), atomically."""
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    table = LeaderboardGeneration.__table__  # type: ignore[attr-defined]
    statement = insert(table).values(benchmark_id=benchmark_id, generation=1, rebuilt_at=utcnow())
    session.exec(
        statement.on_conflict_do_update(
            index_elements=[table.c.benchmark_id],
            set_={"generation": table.c.generation + 1, "rebuilt_at": utcnow()},
        )
    )
