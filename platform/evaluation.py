"""Jobs and shards: cut an evaluation into shards, run them, store outputs and scores.

Outputs are committed batch by batch, so an interrupted run resumes where it
stopped: items that already have an output are never generated again.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from sabha.leaderboards.scoring import ScoredItem, score_items

from .db import session_scope
from .domain import (
    Benchmark,
    Item,
    Job,
    JobStatus,
    Model,
    Output,
    Score,
    Shard,
    ShardStatus,
    id_of,
    utcnow,
)
from .errors import EngineError

__all__ = [
    "EvaluationEngine",
    "create_job",
    "evaluation_split",
    "render_prompt",
    "run_job",
    "score_job",
]

SHARD_SIZE = 64
PIPELINE_DEPTH = 2
EVALUATION_SPLIT = "test"
ProgressCallback = Callable[[int], None]


class EvaluationEngine(Protocol):
    """What ``run_job`` needs from an inference engine (see ``sabha.workers``).

    ``submit`` starts a batch and returns at once; ``collect`` waits for its
    answers. ``run_job`` keeps ``PIPELINE_DEPTH`` batches in flight, so the
    engine generates the next batch while the previous one is being saved.
    """

    def info(self) -> dict[str, Any]: ...

    def submit(self, requests: list[dict[str, Any]], decoding: dict[str, Any]) -> Any: ...

    def collect(self, handle: Any) -> list[dict[str, Any]]: ...


def evaluation_split() -> str:
    """The split that is evaluated and scored."""
    return EVALUATION_SPLIT


def _decoding_hash(decoding: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(decoding, sort_keys=True).encode()).hexdigest()


def render_prompt(benchmark: Benchmark, item: Item) -> str:
    """The benchmark's template filled with the item's input fields."""
    return benchmark.prompt_template.format(**item.input)


def create_job(session: Session, model: Model, benchmark: Benchmark) -> tuple[Job, bool]:
    """Find or create the job of ``model`` on ``benchmark`` with its decoding parameters.

    A new job is cut into shards of at most ``SHARD_SIZE`` test items.

    Returns:
        The job, and whether it was created now.
    """
    decoding = dict(benchmark.decoding)
    digest = _decoding_hash(decoding)
    job = session.exec(
        select(Job).where(
            Job.model_id == model.id,
            Job.benchmark_id == benchmark.id,
            Job.decoding_hash == digest,
        )
    ).first()
    if job is not None:
        return job, False
    job = Job(
        model_id=id_of(model),
        benchmark_id=id_of(benchmark),
        decoding=decoding,
        decoding_hash=digest,
    )
    session.add(job)
    session.flush()
    item_ids = session.exec(
        select(col(Item.id))
        .where(Item.dataset_version_id == benchmark.dataset_version_id)
        .where(Item.split == EVALUATION_SPLIT)
        .order_by(col(Item.key))
    ).all()
    for index, start in enumerate(range(0, len(item_ids), SHARD_SIZE)):
        session.add(
            Shard(
                job_id=id_of(job),
                index=index,
                item_ids=[i for i in item_ids[start : start + SHARD_SIZE] if i is not None],
            )
        )
    session.flush()
    return job, True


def _pending_item_ids(session: Session, shard: Shard) -> list[int]:
    done = set(
        session.exec(
            select(Output.item_id).where(Output.shard_id == shard.id, Output.replica == 0)
        ).all()
    )
    return [item_id for item_id in shard.item_ids if item_id not in done]


def count_pending(db: Engine, job_id: int) -> tuple[int, int]:
    """``(items still to generate, items in the job)``."""
    with Session(db) as session:
        shards = session.exec(select(Shard).where(Shard.job_id == job_id)).all()
        total = sum(len(s.item_ids) for s in shards)
        return sum(len(_pending_item_ids(session, s)) for s in shards), total


def run_job(
    db: Engine,
    job_id: int,
    engine: EvaluationEngine,
    batch_size: int = 64,
    progress: ProgressCallback | None = None,
) -> Job:
    """Generate every missing output of a job, then score it.

    Each batch's outputs are committed as soon as the batch is answered,
    while the engine already works on the next one. If the engine fails, the
    job is marked failed with the reason, saved outputs are kept, and
    ``EngineError`` is raised; running the job again resumes.
    """
    with session_scope(db) as session:
        job = session.get(Job, job_id)
        assert job is not None, f"job {job_id} vanished"
        benchmark = session.get(Benchmark, job.benchmark_id)
        assert benchmark is not None
        job.status = JobStatus.RUNNING
        job.started_at = job.started_at or utcnow()
        job.error = None
        decoding = dict(job.decoding)
        shard_ids = session.exec(
            select(col(Shard.id)).where(Shard.job_id == job_id).order_by(col(Shard.index))
        ).all()

    try:
        executed_on = engine.info()
        _run_shards(
            db,
            [i for i in shard_ids if i is not None],
            benchmark,
            decoding,
            engine,
            executed_on,
            batch_size,
            progress,
        )
    except Exception as exc:
        with session_scope(db) as session:
            failed = session.get(Job, job_id)
            assert failed is not None
            failed.status = JobStatus.FAILED
            failed.error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, EngineError):
            raise
        raise EngineError(
            f"Evaluation of job {job_id} stopped: {type(exc).__name__}: {exc}",
            "Finished outputs are saved; run the same `sabha eval` command again to resume.",
        ) from exc
    return score_job(db, job_id)


def _run_shards(
    db: Engine,
    shard_ids: Sequence[int],
    benchmark: Benchmark,
    decoding: dict[str, Any],
    engine: EvaluationEngine,
    executed_on: dict[str, Any],
    batch_size: int,
    progress: ProgressCallback | None,
) -> None:
    """Generate the missing outputs of the shards, batch by batch, pipelined."""
    batches: list[tuple[Shard, list[Item], bool]] = []  # (shard, items, last batch of shard)
    for shard_id in shard_ids:
        with session_scope(db) as session:
            shard = session.get(Shard, shard_id)
            assert shard is not None
            if shard.status == ShardStatus.COMPLETED:
                continue
            pending = _pending_item_ids(session, shard)
            by_id = {
                item.id: item
                for item in session.exec(select(Item).where(col(Item.id).in_(pending))).all()
            }
            shard.attempts += 1
        if not pending:
            _complete_shard(db, shard_id, executed_on)
            continue
        chunks = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]
        for n, chunk in enumerate(chunks, start=1):
            batches.append((shard, [by_id[i] for i in chunk], n == len(chunks)))

    in_flight: deque[tuple[Shard, list[Item], bool, list[dict[str, Any]], Any]] = deque()
    for shard, batch, last in batches:
        requests = [
            {
                "item_id": item.id,
                "text": render_prompt(benchmark, item),
                "system": benchmark.system_prompt,
            }
            for item in batch
        ]
        in_flight.append((shard, batch, last, requests, engine.submit(requests, decoding)))
        if len(in_flight) >= PIPELINE_DEPTH:
            _save_batch(db, engine, executed_on, progress, *in_flight.popleft())
    while in_flight:
        _save_batch(db, engine, executed_on, progress, *in_flight.popleft())


def _save_batch(
    db: Engine,
    engine: EvaluationEngine,
    executed_on: dict[str, Any],
    progress: ProgressCallback | None,
    shard: Shard,
    batch: list[Item],
    last: bool,
    requests: list[dict[str, Any]],
    handle: Any,
) -> None:
    results = engine.collect(handle)
    expected = {r["item_id"] for r in requests}
    if {r["item_id"] for r in results} != expected or len(results) != len(requests):
        raise EngineError("The engine answered a different set of items than it was asked.")
    with session_scope(db) as session:
        session.add_all(
            Output(
                job_id=shard.job_id,
                shard_id=id_of(shard),
                item_id=result["item_id"],
                attempt=shard.attempts,
                prompt=result["prompt"],
                text=result["text"],
                finish_reason=result.get("finish_reason"),
                num_tokens=int(result.get("num_tokens", 0)),
            )
            for result in results
        )
    if progress:
        progress(len(batch))
    if last:
        _complete_shard(db, id_of(shard), executed_on)


def _complete_shard(db: Engine, shard_id: int, executed_on: dict[str, Any]) -> None:
    with session_scope(db) as session:
        shard = session.get(Shard, shard_id)
        assert shard is not None
        shard.status = ShardStatus.COMPLETED
        shard.executed_on = executed_on
        shard.finished_at = utcnow()


def score_job(db: Engine, job_id: int) -> Job:
    """(Re)compute every score of a finished job in one transaction and complete it."""
    with session_scope(db) as session:
        job = session.get(Job, job_id)
        assert job is not None
        benchmark = session.get(Benchmark, job.benchmark_id)
        assert benchmark is not None
        rows = session.exec(
            select(Output, Item)
            .join(Item, col(Item.id) == Output.item_id)
            .where(Output.job_id == job_id, Output.replica == 0)
            .order_by(col(Item.key))
        ).all()
        scored = [
            ScoredItem(
                prediction=output.text,
                reference=item.reference,
                label=item.label,
                groups={
                    "language": item.language,
                    "region": item.region,
                    "dialect": item.dialect,
                    **item.attributes,
                },
            )
            for output, item in rows
        ]
        results = score_items(
            benchmark.task,
            benchmark.metrics,
            scored,
            labels=benchmark.labels,
            breakdowns=benchmark.breakdowns,
        )
        session.exec(delete(Score).where(col(Score.job_id) == job_id))
        session.add_all(
            Score(
                job_id=job_id,
                metric=r.metric,
                breakdown=r.breakdown,
                group=r.group,
                value=r.value,
                ci_low=r.ci_low,
                ci_high=r.ci_high,
                n=r.n,
                signature=r.signature,
            )
            for r in results
        )
        job.status = JobStatus.COMPLETED
        job.finished_at = utcnow()
        job.error = None
        return job
