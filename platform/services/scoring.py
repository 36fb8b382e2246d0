"""Scoring runs: score a job's accepted outputs under a benchmark's scoring identity.

A scoring run is written once, in one transaction, and never changed: a new
scoring identity (other metrics, labels, answer extraction or breakdowns)
adds another scoring run beside it, reusing the same outputs.

Items that failed (``Output.error``: prompt too long, tokenizer failure) are
scored as wrong answers: an empty answer for generation metrics and an
unparseable one for classification. The scoring run counts them by reason, so
pages can say "3 items failed: prompt too long".

Items of a private held-out split (outside ``PUBLIC_SPLITS``) are scored
apart: every public number (overall, breakdowns, item and failure counts,
resamples) comes from public items only, so anyone can recompute it from the
released Parquet file, and the held-out items add one aggregate score per
metric (breakdown ``held_out``, group ``private``: value, CI and n), never a
per-item answer.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlmodel import Session, col, select

from sabha.leaderboards.board import rebuild_leaderboard
from sabha.leaderboards.metrics import get_metric
from sabha.leaderboards.parallel_stats import item_stats_parallel
from sabha.leaderboards.scoring import (
    ScoredItem,
    ScoreRow,
    failure_reason,
    score_from_item_stats,
    score_items,
)
from sabha.platform.benchmarks import AnswerSpec
from sabha.platform.domain import (
    PUBLIC_SPLITS,
    Benchmark,
    Item,
    Job,
    Output,
    OutputStat,
    Pool,
    RunVerdict,
    Score,
    ScoringRun,
    Shard,
    ShardRun,
    id_of,
)
from sabha.platform.errors import SabhaError

__all__ = [
    "HELD_OUT_BREAKDOWN",
    "CountedOutput",
    "accepted_outputs",
    "failure_reason",
    "producing_pools",
    "record_output_stats",
    "score_job",
    "score_job_for_current_benchmarks",
]


HELD_OUT_BREAKDOWN = "held_out"
"""The breakdown of the aggregate score on a private held-out split (its group: ``private``)."""


@dataclass(frozen=True)
class CountedOutput:
    """One accepted output with what scoring needs of its item (plain values, no ORM)."""

    output_id: int
    text: str
    error: str | None
    key: str
    reference: str | None
    label: str | None
    groups: dict[str, str | None]
    split: str = "test"

    @property
    def prediction(self) -> str:
        """The answer as scored: a failed item is an empty answer."""
        return "" if self.error else self.text.strip()


def accepted_outputs(session: Session, job_id: int) -> list[CountedOutput]:
    """The outputs that count for a job (one per item, from accepted runs), by item key.

    Raises:
        SabhaError: some shard has no accepted run yet (no partial scores).
    """
    missing = session.exec(
        select(Shard.index).where(Shard.job_id == job_id, col(Shard.accepted_run_id).is_(None))
    ).all()
    if missing:
        raise SabhaError(
            f"Job {job_id} has {len(missing)} shard(s) without accepted results "
            f"(shards {sorted(missing)[:10]}); scores are published only for complete jobs.",
            "Run `sabha eval` again (or wait for the pools) to finish the job.",
        )
    columns: list[Any] = [
        Output.id,
        Output.text,
        Output.error,
        Item.key,
        Item.reference,
        Item.label,
        Item.language,
        Item.region,
        Item.dialect,
        Item.attributes,
        Item.split,
    ]
    rows = session.exec(
        select(*columns)
        .join(Shard, col(Shard.accepted_run_id) == Output.shard_run_id)
        .join(Item, col(Item.id) == Output.item_id)
        .where(Shard.job_id == job_id)
        .order_by(col(Item.key))
    ).all()
    return [
        CountedOutput(
            output_id=row[0],
            text=row[1],
            error=row[2],
            key=row[3],
            reference=row[4],
            label=row[5],
            groups={"language": row[6], "region": row[7], "dialect": row[8], **row[9]},
            split=row[10],
        )
        for row in rows
    ]


def producing_pools(session: Session, job_id: int) -> list[str]:
    """The pools a job's scores rest on: those of accepted runs and of agreeing replicas."""
    rows = session.exec(
        select(Pool.name)
        .join(ShardRun, col(ShardRun.pool_id) == Pool.id)
        .join(Shard, col(Shard.id) == ShardRun.shard_id)
        .where(
            Shard.job_id == job_id,
            col(Shard.accepted_run_id).is_not(None),
            sa.or_(
                col(Shard.accepted_run_id) == ShardRun.id,
                col(ShardRun.verdict) == RunVerdict.AGREED,
            ),
        )
        .distinct()
    ).all()
    return sorted(rows)


def _scoring_spec(benchmark: Benchmark) -> dict[str, object]:
    return {
        "task": benchmark.task,
        "metrics": list(benchmark.metrics),
        "labels": list(benchmark.labels),
        "answer": dict(benchmark.answer),
        "breakdowns": list(benchmark.breakdowns),
    }


def score_job(session: Session, job: Job, benchmark: Benchmark) -> ScoringRun:
    """The scoring run of ``job`` under ``benchmark``'s scoring identity, made if missing.

    Raises:
        SabhaError: the job is incomplete, or the benchmark measures other outputs.
    """
    # A job made with a submission's decoding overrides has its own generation
    # identity; its own benchmark scores it (it is not ranked beside the others).
    if benchmark.generation_hash != job.generation_hash and benchmark.id != job.benchmark_id:
        raise SabhaError(
            f"Benchmark {benchmark.name!r} version {benchmark.version} does not share job "
            f"{job.id}'s generation identity, so it cannot score its outputs.",
            "Create a job for this benchmark with `sabha eval`.",
        )
    existing = session.exec(
        select(ScoringRun).where(
            ScoringRun.job_id == job.id, ScoringRun.scoring_hash == benchmark.scoring_hash
        )
    ).first()
    if existing is not None:
        return existing
    counted = accepted_outputs(session, id_of(job))
    rows = [o for o in counted if o.split in PUBLIC_SPLITS]
    held_out = [o for o in counted if o.split not in PUBLIC_SPLITS]
    failures = Counter(failure_reason(o.error) for o in rows if o.error)
    results = _score_rows(session, benchmark, rows, benchmark.breakdowns)
    signatures = {r.metric: r.signature for r in results if r.signature}
    if held_out:  # one aggregate per metric; the public numbers above leave these items out
        results += [
            replace(r, breakdown=HELD_OUT_BREAKDOWN, group="private")
            for r in _score_rows(session, benchmark, held_out, ())
            if r.breakdown == "overall"
        ]
    pools = producing_pools(session, id_of(job))
    run = ScoringRun(
        job_id=id_of(job),
        scoring_hash=benchmark.scoring_hash,
        spec=_scoring_spec(benchmark),
        signatures=signatures,
        items=len(rows),
        failed_items=sum(failures.values()),
        failure_reasons=dict(failures),
        pools=sorted(pools),
        overall_resamples=_pack_resamples(results),
    )
    session.add(run)
    session.flush()
    session.add_all(
        Score(
            scoring_run_id=id_of(run),
            metric=r.metric,
            breakdown=r.breakdown,
            group=r.group,
            value=r.value,
            ci_low=r.ci_low,
            ci_high=r.ci_high,
            n=r.n,
            too_few=r.too_few,
            signature=r.signature,
        )
        for r in results
    )
    session.flush()
    return run


def _score_rows(
    session: Session,
    benchmark: Benchmark,
    rows: Sequence[CountedOutput],
    breakdowns: Sequence[str],
) -> list[ScoreRow]:
    """Every metric of ``benchmark`` on ``rows``, overall and per group of ``breakdowns``."""
    groups = [o.groups for o in rows]
    if benchmark.task == "generation":
        stats = _generation_stats(session, rows, benchmark.metrics)
        return score_from_item_stats(
            benchmark.task, benchmark.metrics, stats, groups, breakdowns=breakdowns
        )
    # answer extraction is part of the scoring identity: nothing to cache
    scored = [
        ScoredItem(prediction="" if o.error else o.text, label=o.label, groups=o.groups)
        for o in rows
    ]
    return score_items(
        benchmark.task,
        benchmark.metrics,
        scored,
        labels=benchmark.labels,
        breakdowns=breakdowns,
        answer=AnswerSpec.model_validate(benchmark.answer) if benchmark.answer else None,
    )


def score_job_for_current_benchmarks(session: Session, job: Job) -> list[ScoringRun]:
    """Score a complete job for every current benchmark of its generation identity.

    Each of those benchmarks' leaderboards is rebuilt. A job no current
    benchmark shares (a submission's decoding overrides) is scored by its own
    benchmark and ranked nowhere.
    """
    benchmarks = session.exec(
        select(Benchmark).where(
            Benchmark.generation_hash == job.generation_hash,
            col(Benchmark.is_current).is_(True),
        )
    ).all()
    if not benchmarks:  # decoding overrides: scored by its own benchmark, not ranked
        own = session.get(Benchmark, job.benchmark_id)
        return [score_job(session, job, own)] if own is not None else []
    runs = [score_job(session, job, benchmark) for benchmark in benchmarks]
    for benchmark in benchmarks:
        rebuild_leaderboard(session, benchmark)
    return runs


def _pack_resamples(results: Sequence[ScoreRow]) -> bytes | None:
    """The bootstrap resamples of every overall score, for paired comparisons."""
    arrays = {
        r.metric: np.asarray(r.resamples, dtype=np.float64)
        for r in results
        if r.breakdown == "overall" and r.resamples is not None
    }
    if not arrays:
        return None
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def _generation_stats(
    session: Session, rows: Sequence[CountedOutput], metrics: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per-item statistics of each metric, read from ``output_stat`` where stored."""
    stored: dict[tuple[int, str], np.ndarray] = {}
    ids = [o.output_id for o in rows]
    for start in range(0, len(ids), 5000):
        for output_id, metric, blob in session.exec(
            select(OutputStat.output_id, OutputStat.metric, OutputStat.stats).where(
                col(OutputStat.output_id).in_(ids[start : start + 5000]),
                col(OutputStat.metric).in_(list(metrics)),
            )
        ):
            stored[(output_id, metric)] = np.frombuffer(blob, dtype=np.float64)
    for metric in metrics:  # e.g. a metric added by a new scoring identity
        missing = [o for o in rows if (o.output_id, metric) not in stored]
        if missing:
            stored.update(record_output_stats(session, missing, [metric]))
    return {metric: np.vstack([stored[(o.output_id, metric)] for o in rows]) for metric in metrics}


def record_output_stats(
    session: Session, rows: Sequence[CountedOutput], metrics: Sequence[str]
) -> dict[tuple[int, str], np.ndarray]:
    """Compute and store the per-item statistics of generation ``metrics`` for outputs.

    Called as each shard's outputs arrive, so scoring a finished job only
    bootstraps; sacrebleu computes the statistics (on two processes for large
    batches). Stored as float64 bytes.

    Returns:
        The statistics by ``(output id, metric)``.
    """
    predictions = [o.prediction for o in rows]
    references = [o.reference or "" for o in rows]
    computed: dict[tuple[int, str], np.ndarray] = {}
    for name in metrics:
        if get_metric(name).task != "generation":
            continue
        stats = item_stats_parallel(name, predictions, references)
        for output, row in zip(rows, stats, strict=True):
            values = np.ascontiguousarray(row, dtype=np.float64)
            session.add(OutputStat(output_id=output.output_id, metric=name, stats=values.tobytes()))
            computed[(output.output_id, name)] = values
    session.flush()
    return computed


def stats_for_new_outputs(session: Session, job: Job, outputs: Sequence[Output]) -> None:
    """Store per-item statistics for the current benchmarks that will score ``job``."""
    metrics = sorted(
        {
            m
            for b in session.exec(
                select(Benchmark).where(
                    Benchmark.generation_hash == job.generation_hash,
                    col(Benchmark.is_current).is_(True),
                    Benchmark.task == "generation",
                )
            )
            for m in b.metrics
        }
    )
    if outputs:  # a re-accepted run (an audit, a late majority) has its statistics already
        known = set(
            session.exec(
                select(OutputStat.output_id).where(
                    col(OutputStat.output_id).in_([id_of(o) for o in outputs])
                )
            ).all()
        )
        outputs = [o for o in outputs if id_of(o) not in known]
    if not metrics or not outputs:
        return
    references = dict(
        session.exec(
            select(Item.id, Item.reference).where(col(Item.id).in_([o.item_id for o in outputs]))
        ).all()
    )
    record_output_stats(
        session,
        [
            CountedOutput(
                output_id=id_of(o),
                text=o.text,
                error=o.error,
                key="",
                reference=references[o.item_id],
                label=None,
                groups={},
            )
            for o in outputs
        ],
        metrics,
    )
