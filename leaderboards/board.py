"""Leaderboard data: ranked runs with CIs and provenance, as ``*Public`` models.

The leaderboard of a benchmark is a read model (``leaderboard_entry``),
rebuilt whenever one of its scoring runs lands; a page is then one query over
plain rows, already ranked, 50 at a time.
"""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlmodel import Session, col, delete, func, select

from sabha.platform.catalog import get_benchmark, latest_benchmarks
from sabha.platform.domain import (
    PUBLIC_SPLITS,
    Benchmark,
    CommunityScore,
    Dataset,
    DatasetVersion,
    Item,
    Job,
    LeaderboardEntry,
    Model,
    Output,
    Pool,
    RunVerdict,
    Score,
    ScoringRun,
    Shard,
    ShardRun,
    id_of,
)
from sabha.platform.errors import NotFoundError

from .judgements import COMMUNITY_METRICS
from .lengths import answer_lengths
from .metrics import get_metric
from .public import (
    BenchmarkPublic,
    BenchmarkSummary,
    DataCardPublic,
    DatasetPublic,
    LeaderboardColumns,
    LeaderboardPage,
    LeaderboardRow,
    ModelPublic,
    RunPublic,
    SamplePublic,
    ScorePublic,
    ShardPublic,
)
from .ranking import RankingEntry, rank_by_sorting

__all__ = [
    "PER_PAGE",
    "benchmark_public",
    "benchmark_summaries",
    "data_card",
    "leaderboard",
    "leaderboard_version",
    "rebuild_leaderboard",
    "run_details",
]

PER_PAGE = 50


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes, and Sabha stores UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _resamples(run: ScoringRun, metric: str) -> np.ndarray | None:
    """The stored bootstrap resamples of a run's overall ``metric`` (paired ranking)."""
    if not run.overall_resamples:
        return None
    with np.load(io.BytesIO(run.overall_resamples), allow_pickle=False) as arrays:
        return arrays[metric] if metric in arrays.files else None


def _cell(score: Score) -> dict[str, Any]:
    """A score as a read-model cell; a too-few group has no interval (None, not value twice)."""
    return {
        "value": round(score.value, 4),
        "ci_low": None if score.too_few else round(score.ci_low, 4),
        "ci_high": None if score.too_few else round(score.ci_high, 4),
        "n": score.n,
        "too_few": score.too_few,
    }


def _ranking_entry(name: str, row: dict[str, Any], metric: str) -> RankingEntry:
    cell = row["cells"]["scores"][metric]
    # A too-few run publishes no interval; ranking still compares it as a point.
    point = cell["value"]
    return RankingEntry(
        name,
        point,
        resamples=_resamples(row["run"], metric),
        ci_low=point if cell["ci_low"] is None else cell["ci_low"],
        ci_high=point if cell["ci_high"] is None else cell["ci_high"],
    )


PEOPLE = "people"
JUDGE_SUFFIX = "@judge"  # a judge model's column: ``violation_rate@judge``


def _community_cells(session: Session, job_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each job's community scores as leaderboard cells: overall, with their breakdowns."""
    found: dict[int, dict[str, Any]] = {}
    if not job_ids:
        return found
    scores = session.exec(
        select(CommunityScore)
        .where(col(CommunityScore.job_id).in_(job_ids))
        .order_by(
            col(CommunityScore.metric), col(CommunityScore.breakdown), col(CommunityScore.group)
        )
    ).all()
    for score in scores:
        cell: dict[str, float | int | None] = {
            "value": round(score.value, 4),
            "ci_low": round(score.ci_low, 4),
            "ci_high": round(score.ci_high, 4),
            "n": score.n,
            "judgements": score.judgements,
        }
        if score.judge != PEOPLE:
            cell["agreement"] = None if score.agreement is None else round(score.agreement, 4)
            cell["agreement_items"] = score.agreement_items
        key = score.metric if score.judge == PEOPLE else f"{score.metric}{JUDGE_SUFFIX}"
        metrics = found.setdefault(score.job_id, {})
        entry = metrics.setdefault(key, {"breakdowns": {}})
        if score.breakdown == "overall":
            entry.update(cell, judge=score.judge)
        else:
            entry["breakdowns"].setdefault(score.breakdown, {})[score.group] = cell
    return {
        job: {metric: cell for metric, cell in metrics.items() if "value" in cell}
        for job, metrics in found.items()
    }


def _model_public(model: Model) -> ModelPublic:
    return ModelPublic(
        name=model.name,
        source=model.source,
        repo_id=model.repo_id,
        revision=model.revision,
        smoke_test=model.smoke_test,
        description=model.description,
    )


def _dataset_public(version: DatasetVersion, dataset: Dataset) -> DatasetPublic:
    return DatasetPublic(
        name=dataset.name,
        license=dataset.license,
        version=version.content_hash,
        items=version.item_count,
        released_at=_utc(version.released_at),
        card_url=f"/datasets/{dataset.name}/card?version={version.content_hash}",
    )


def data_card(
    session: Session, dataset_name: str, version_hash: str | None = None
) -> DataCardPublic:
    """The card of a released dataset version (default: the newest).

    Raises:
        NotFoundError: no such dataset, version or card.
    """
    query = (
        select(DatasetVersion, Dataset)
        .join(Dataset, col(Dataset.id) == DatasetVersion.dataset_id)
        .where(Dataset.name == dataset_name, col(DatasetVersion.released_at).is_not(None))
    )
    if version_hash is not None:
        query = query.where(DatasetVersion.content_hash == version_hash)
    found = session.exec(query.order_by(col(DatasetVersion.id).desc())).first()
    if found is None or not found[0].card_markdown:
        raise NotFoundError(
            f"There is no released data card for {dataset_name!r}"
            + (f" version {version_hash[:12]}." if version_hash else "."),
            "Follow a card link from a leaderboard.",
        )
    version, dataset = found
    return DataCardPublic(
        dataset=_dataset_public(version, dataset), card_markdown=str(version.card_markdown)
    )


def _benchmark_public(
    benchmark: Benchmark, version: DatasetVersion, dataset: Dataset
) -> BenchmarkPublic:
    primary = get_metric(benchmark.primary_metric)
    return BenchmarkPublic(
        name=benchmark.name,
        version=benchmark.version,
        title=benchmark.title,
        description=benchmark.description,
        task=benchmark.task,
        languages=list(benchmark.languages),
        metrics=list(benchmark.metrics),
        primary_metric=benchmark.primary_metric,
        primary_metric_label=primary.label,
        higher_is_better=primary.higher_is_better,
        breakdowns=list(benchmark.breakdowns),
        labels=list(benchmark.labels),
        dataset=_dataset_public(version, dataset),
        generation_hash=benchmark.generation_hash,
        scoring_hash=benchmark.scoring_hash,
        definition_hash=benchmark.definition_hash,
    )


def benchmark_public(session: Session, benchmark: Benchmark) -> BenchmarkPublic:
    """A benchmark definition with its dataset version, as published."""
    version = session.get(DatasetVersion, benchmark.dataset_version_id)
    assert version is not None
    dataset = session.get(Dataset, version.dataset_id)
    assert dataset is not None
    return _benchmark_public(benchmark, version, dataset)


def benchmark_summaries(session: Session) -> list[BenchmarkSummary]:
    """Every current benchmark with its dataset and number of ranked models."""
    counts = dict(
        session.exec(
            select(LeaderboardEntry.benchmark_id, func.count()).group_by(
                col(LeaderboardEntry.benchmark_id)
            )
        ).all()
    )
    return [
        BenchmarkSummary(
            **benchmark_public(session, b).model_dump(), models=counts.get(id_of(b), 0)
        )
        for b in latest_benchmarks(session)
    ]


def rebuild_leaderboard(session: Session, benchmark: Benchmark) -> int:
    """Rank every scored model of a benchmark and store the rows pages read.

    Returns:
        The number of ranked models.
    """
    primary = get_metric(benchmark.primary_metric)
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
    rows: dict[str, dict[str, Any]] = {}
    for run, job, model in runs:
        scores: dict[str, Any] = {}
        breakdowns: dict[str, dict[str, Any]] = {}
        for score in scores_by_run.get(id_of(run), []):
            if score.breakdown == "overall":
                scores[score.metric] = _cell(score)
            elif score.metric == benchmark.primary_metric:
                breakdowns.setdefault(score.breakdown, {})[score.group] = _cell(score)
        if benchmark.primary_metric not in scores:
            continue
        rows[model.name] = {
            "model": model,
            "job": job,
            "run": run,
            "cells": {
                "scores": scores,
                "breakdowns": breakdowns,
                "failed_items": run.failed_items,
                "failure_reasons": dict(run.failure_reasons),
            },
        }
    community = _community_cells(session, [id_of(row["job"]) for row in rows.values()])
    for row in rows.values():
        row["cells"]["community"] = community.get(id_of(row["job"]), {})
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
                model_id=id_of(row["model"]),
                job_id=id_of(row["job"]),
                scoring_run_id=id_of(row["run"]),
                position=position,
                rank=entry.rank,
                tied_with=list(entry.tied_with),
                model=_model_public(row["model"]).model_dump(mode="json"),
                cells=row["cells"],
                finished_at=row["job"].finished_at or row["run"].created_at,
            )
        )
    session.flush()
    return len(ranked)


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

    Pages are rebuilt only when a scoring run lands or the definition's wording
    changes, so the site can cache rendered pages under this key.

    Raises:
        NotFoundError: unknown benchmark.
    """
    benchmark = get_benchmark(session, benchmark_name)
    newest, count = session.exec(
        select(func.max(LeaderboardEntry.id), func.count()).where(
            LeaderboardEntry.benchmark_id == benchmark.id
        )
    ).one()
    return (
        benchmark.id,
        benchmark.title,
        benchmark.description,
        benchmark.primary_metric,
        tuple(benchmark.languages),
        newest,
        count,
    )


def leaderboard(
    session: Session, benchmark_name: str, page: int = 1, per_page: int = PER_PAGE
) -> LeaderboardPage:
    """One page of a benchmark's ranked table, best first.

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
            run_url=f"/runs/{entry.job_id}",
            finished_at=_utc(entry.finished_at),
            scores=entry.cells["scores"],
            breakdowns=entry.cells["breakdowns"],
            tied_with=entry.tied_with,
            failed_items=entry.cells.get("failed_items", 0),
            failure_reasons=entry.cells.get("failure_reasons", {}),
            community=entry.cells.get("community", {}),
        )
        for entry in entries
    ]
    return LeaderboardPage(
        benchmark=_benchmark_public(benchmark, *found),
        columns=_columns(benchmark, rows),
        rows=rows,
        page=page,
        per_page=per_page,
        total=int(total),
    )


def run_details(session: Session, job_id: int, sample_size: int = 10) -> RunPublic:
    """Provenance of one run: dataset version, model, decoding, where it ran, every score.

    Only items of public splits are shown as samples.

    Raises:
        NotFoundError: no such run.
    """
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"There is no run {job_id}.", "Pick a run from a leaderboard.")
    model = session.get(Model, job.model_id)
    benchmark = session.get(Benchmark, job.benchmark_id)
    assert model is not None and benchmark is not None
    current = session.exec(
        select(Benchmark).where(
            Benchmark.name == benchmark.name,
            col(Benchmark.is_current).is_(True),
            Benchmark.generation_hash == job.generation_hash,
        )
    ).first()
    benchmark = current or benchmark
    scoring = (
        session.exec(
            select(ScoringRun).where(
                ScoringRun.job_id == job_id, ScoringRun.scoring_hash == benchmark.scoring_hash
            )
        ).first()
        or session.exec(
            select(ScoringRun)
            .where(ScoringRun.job_id == job_id)
            .order_by(col(ScoringRun.id).desc())
        ).first()
    )
    scores = (
        sorted(
            session.exec(select(Score).where(Score.scoring_run_id == scoring.id)).all(),
            key=lambda s: (s.metric, s.breakdown != "overall", s.breakdown, s.group),
        )
        if scoring
        else []
    )
    shards = session.exec(
        select(Shard).where(Shard.job_id == job_id).order_by(col(Shard.index))
    ).all()
    runs = session.exec(
        select(ShardRun, Pool)
        .join(Pool, col(Pool.id) == ShardRun.pool_id)
        .where(ShardRun.job_id == job_id)
    ).all()
    attempts = Counter(run.shard_id for run, _ in runs)
    accepted = {id_of(run): (run, pool) for run, pool in runs}
    counted = {shard.accepted_run_id for shard in shards}
    agreed: dict[int, list[str]] = {}  # the replicas that agreed with each accepted run
    for replica, replica_pool in runs:
        if replica.verdict == RunVerdict.AGREED and id_of(replica) not in counted:
            agreed.setdefault(replica.shard_id, []).append(replica_pool.name)
    shard_rows = []
    for shard in shards:
        run, pool = accepted.get(shard.accepted_run_id or -1, (None, None))
        shard_rows.append(
            ShardPublic(
                shard=shard.index,
                items=len(shard.item_ids),
                status=shard.status,
                attempts=attempts.get(id_of(shard), 0),
                pool=pool.name if pool else None,
                verified_by=sorted(agreed.get(id_of(shard), [])) if run else [],
                finished_at=_utc(shard.finished_at),
                executed_on=(run.executed_on or {}) if run else {},
            )
        )
    outputs = session.exec(
        select(Output, Item)
        .join(Shard, col(Shard.accepted_run_id) == Output.shard_run_id)
        .join(Item, col(Item.id) == Output.item_id)
        .where(Shard.job_id == job_id, col(Item.split).in_(PUBLIC_SPLITS))
        .order_by(col(Item.key))
        .limit(sample_size)
    ).all()
    n_outputs = session.exec(
        select(func.count())
        .select_from(Output)
        .join(Shard, col(Shard.accepted_run_id) == Output.shard_run_id)
        .where(Shard.job_id == job_id)
    ).one()
    return RunPublic(
        id=id_of(job),
        status=job.status,
        created_at=_utc(job.created_at),
        started_at=_utc(job.started_at),
        finished_at=_utc(job.finished_at),
        error=job.error,
        decoding=dict(job.decoding),
        generation=dict(job.generation),
        benchmark=benchmark_public(session, benchmark),
        prompt_template=str(job.generation.get("prompt_template", "")),
        system_prompt=job.generation.get("system_prompt"),
        model=_model_public(model),
        shards=shard_rows,
        pools=list(scoring.pools) if scoring else [],
        metric_signatures={s.metric: s.signature for s in scores if s.signature},
        scores=[
            ScorePublic(
                metric=s.metric,
                breakdown=s.breakdown,
                group=s.group,
                value=s.value,
                ci_low=s.ci_low,
                ci_high=s.ci_high,
                n=s.n,
                too_few=s.too_few,
            )
            for s in scores
        ],
        outputs=int(n_outputs),
        failed_items=scoring.failed_items if scoring else 0,
        failure_reasons=dict(scoring.failure_reasons) if scoring else {},
        samples=[
            SamplePublic(
                item=item.key,
                language=item.language,
                prompt=output.prompt,
                output=output.text,
                error=output.error,
                expected=item.reference or item.label,
            )
            for output, item in outputs
        ],
        answer_lengths=answer_lengths(session, job),
    )
