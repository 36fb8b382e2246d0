"""A run's provenance: dataset version, model, decoding, where each shard ran, every score."""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote

from sqlmodel import Session, col, func, select

from sabha.platform.catalog import definition_for_job
from sabha.platform.domain import (
    PUBLIC_SPLITS,
    Item,
    Job,
    Model,
    Output,
    Pool,
    RunVerdict,
    Score,
    ScoringRun,
    Shard,
    ShardRun,
    as_utc,
    id_of,
)
from sabha.platform.errors import NotFoundError

from ..lengths import answer_lengths
from ..public import RunPublic, SamplePublic, ScorePublic, ShardPublic
from ._cards import benchmark_public, model_public
from ._cells import score_cell
from ._datasets import annotated_through_sabha

__all__ = ["run_details"]


def _shard_rows(session: Session, job_id: int) -> list[ShardPublic]:
    """Each shard with its accepted run, where that ran, and the pools whose replicas agreed."""
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
    rows = []
    for shard in shards:
        run, pool = accepted.get(shard.accepted_run_id or -1, (None, None))
        rows.append(
            ShardPublic(
                shard=shard.index,
                items=len(shard.item_ids),
                status=shard.status,
                attempts=attempts.get(id_of(shard), 0),
                pool=pool.name if pool else None,
                verified_by=sorted(agreed.get(id_of(shard), [])) if run else [],
                finished_at=as_utc(shard.finished_at),
                executed_on=(run.executed_on or {}) if run else {},
            )
        )
    return rows


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
    assert model is not None
    benchmark = definition_for_job(session, job)
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
    described = benchmark_public(session, benchmark)
    dataset = described.dataset.name
    annotated = annotated_through_sabha(session, dataset)
    return RunPublic(
        id=id_of(job),
        status=job.status,
        created_at=as_utc(job.created_at),
        started_at=as_utc(job.started_at),
        finished_at=as_utc(job.finished_at),
        error=job.error,
        decoding=dict(job.decoding),
        generation=dict(job.generation),
        benchmark=described,
        prompt_template=str(job.generation.get("prompt_template", "")),
        system_prompt=job.generation.get("system_prompt"),
        model=model_public(model),
        shards=_shard_rows(session, job_id),
        pools=list(scoring.pools) if scoring else [],
        metric_signatures={s.metric: s.signature for s in scores if s.signature},
        scores=[
            ScorePublic(
                metric=s.metric,
                breakdown=s.breakdown,
                group=s.group,
                **score_cell(s, places=None).model_dump(),
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
                history_url=(
                    f"/datasets/{dataset}/items/{quote(item.key, safe='')}/history"
                    if annotated
                    else None
                ),
            )
            for output, item in outputs
        ],
        answer_lengths=answer_lengths(session, job),
    )
