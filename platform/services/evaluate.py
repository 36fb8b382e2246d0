"""Evaluate models on benchmarks with a local pool that goes through the queue.

``sabha eval`` is a pool like any other: it leases shards with
``lease_next_shard``, keeps its leases alive with heartbeats while its engine
works, submits each shard's results with ``submit_shard_results`` and
finalizes complete jobs. Two ``sabha eval`` processes on the same job share
its shards; a killed one loses only the shards it had in flight (their
leases expire and the shards return to the queue).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.platform.catalog import check_model_unchanged, get_benchmark, get_model
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Job,
    JobStatus,
    Model,
    RunStatus,
    Score,
    ScoringRun,
    Shard,
    ShardRun,
    ShardStatus,
    id_of,
)
from sabha.platform.errors import EngineError, SabhaError
from sabha.platform.wire import (
    ChatTemplatePolicy,
    DecodingParams,
    EngineInfo,
    GenerationRequest,
    GenerationResult,
    ModelSource,
    ShardLease,
    ShardResult,
)
from sabha.workers.busy import BusyClock

from .budgets import load_token_counter
from .pools import register_pool
from .queue import (
    DEFAULT_LEASE_SECONDS,
    LeaseLost,
    ResultRejected,
    create_job,
    finalize_job,
    heartbeat_lease,
    job_progress,
    lease_next_shard,
    release_lease,
    submit_shard_results,
)

__all__ = [
    "EngineFactory",
    "ModelPlan",
    "ShardEngine",
    "local_pool_name",
    "plan_evaluation",
    "primary_summary",
    "run_local_pool",
]

K = TypeVar("K")
Work = tuple[K, list[GenerationRequest], DecodingParams, ChatTemplatePolicy]
ProgressCallback = Callable[[int], None]


class ShardEngine(Protocol):
    """What the local pool needs from an engine (``sabha.workers.EngineClient``)."""

    def info(self) -> EngineInfo: ...

    def generate_shards(
        self, work: Iterable[Work[Any]], max_in_flight: int = 256
    ) -> Iterator[tuple[Any, list[GenerationResult]]]: ...

    def close(self) -> None: ...


EngineFactory = Callable[[ModelSource, int], ShardEngine]


@dataclass
class ModelPlan:
    """One model's jobs that still need work."""

    model: str
    jobs: list[tuple[str, int]] = field(default_factory=list)  # (benchmark, job id)
    done: list[tuple[str, int]] = field(default_factory=list)


def local_pool_name() -> str:
    """The name of this process's local pool: two `sabha eval` at once are two pools."""
    return f"local:{socket.gethostname()}:{os.getpid()}"


def plan_evaluation(
    db: Engine,
    model_names: Sequence[str],
    benchmark_names: Sequence[str],
    shard_size: int | None = None,
) -> list[ModelPlan]:
    """Find or create the job of each model on each benchmark.

    Failed jobs are queued again (their accepted shards are kept). Local model
    folders are checked against their registered digest outside any write
    transaction (hashing a large folder takes a while).

    Raises:
        NotFoundError: an unknown model or benchmark (the message lists the known ones).
        SabhaError: a local model folder changed since it was registered.
    """
    with Session(db) as session:
        budgeted = any(
            get_benchmark(session, name).decoding.get("budget") for name in benchmark_names
        )
        models = [get_model(session, name) for name in model_names]
    for model in models:
        if model.source == "local":
            check_model_unchanged(model)
    # Per-language budgets are measured with each model's tokenizer, read before
    # the write transaction (it may come from the hub).
    counters = {m.name: load_token_counter(m) for m in models} if budgeted else {}
    plans = []
    with session_scope(db) as session:
        benchmarks = [get_benchmark(session, name) for name in benchmark_names]
        for model in models:
            plan = ModelPlan(model.name)
            for benchmark in benchmarks:
                job, _ = create_job(
                    session, model, benchmark, shard_size, token_counter=counters.get(model.name)
                )
                if job.status == JobStatus.COMPLETED:
                    plan.done.append((benchmark.name, id_of(job)))
                    continue
                if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
                    job.status = JobStatus.QUEUED
                plan.jobs.append((benchmark.name, id_of(job)))
            plans.append(plan)
    return plans


def pending_items(db: Engine, job_ids: Sequence[int]) -> tuple[int, int]:
    """``(items without accepted outputs, items in the jobs)``."""
    with Session(db) as session:
        progress = [job_progress(session, job_id) for job_id in job_ids]
    total = sum(p.items for p in progress)
    return total - sum(p.completed_items for p in progress), total


class _Heartbeat:
    """Keeps the pool's leases alive from a background thread."""

    def __init__(self, db: Engine, lease_seconds: int) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self.held: dict[int, ShardLease] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="sabha-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def add(self, lease: ShardLease) -> None:
        with self.lock:
            self.held[lease.run_id] = lease

    def drop(self, run_id: int) -> None:
        with self.lock:
            self.held.pop(run_id, None)

    def leases(self) -> list[ShardLease]:
        with self.lock:
            return list(self.held.values())

    def _beat(self) -> None:
        interval = max(self.lease_seconds / 3, 0.5)
        while not self.stop.wait(interval):
            for lease in self.leases():
                with contextlib.suppress(LeaseLost):  # a late result is still kept
                    heartbeat_lease(self.db, lease.run_id, lease.token, self.lease_seconds)


def _other_leases(db: Engine, job_ids: Sequence[int]) -> int:
    with Session(db) as session:
        return len(
            session.exec(
                select(ShardRun.id).where(
                    col(ShardRun.job_id).in_(list(job_ids)),
                    ShardRun.status == RunStatus.LEASED,
                )
            ).all()
        )


def _jobs_complete(db: Engine, job_ids: Sequence[int]) -> bool:
    with Session(db) as session:
        open_shards = session.exec(
            select(Shard.id).where(
                col(Shard.job_id).in_(list(job_ids)), col(Shard.accepted_run_id).is_(None)
            )
        ).first()
        return open_shards is None


def run_local_pool(
    db: Engine,
    job_ids: Sequence[int],
    engine_factory: EngineFactory,
    pool_name: str | None = None,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    max_in_flight: int | None = None,
    progress: ProgressCallback | None = None,
    wait_for_others: float = 1.0,
    on_wait: Callable[[int], None] | None = None,
) -> None:
    """Run the shards of ``job_ids`` (one model's jobs) until every job is complete.

    The engine starts only once a shard is leased, and stays up for all the
    jobs. At most ``max_in_flight`` items are in the engine at once (default:
    twice the engine's own batch, ``max_num_seqs``). When the queue is empty
    but other pools still hold leases on these jobs, it waits (their shards
    come back if their leases expire).

    On any failure or Ctrl-C the pool releases its leases, so the shards go
    back to the queue at once, and jobs left without a live lease are marked
    queued (Ctrl-C) or failed with the reason (an engine failure).

    Raises:
        EngineError: the engine could not load the model or died.
    """
    pool_id = register_pool(db, pool_name or local_pool_name(), capabilities={"pid": os.getpid()})
    engine: ShardEngine | None = None
    info: EngineInfo | None = None
    clock = BusyClock()
    with _Heartbeat(db, lease_seconds) as heartbeat:

        def leases(first: ShardLease) -> Iterator[Work[ShardLease]]:
            lease: ShardLease | None = first
            while lease is not None:
                heartbeat.add(lease)
                clock.start(lease.run_id, len(lease.requests))
                yield (lease, lease.requests, lease.decoding, lease.chat_template)
                lease = lease_next_shard(db, pool_id, job_ids, lease_seconds)

        try:
            while not _jobs_complete(db, job_ids):
                first = lease_next_shard(db, pool_id, job_ids, lease_seconds)
                if first is None:
                    held_elsewhere = _other_leases(db, job_ids)
                    if not held_elsewhere:
                        # Another pool may have finished the last shard just
                        # after our check above: look again before failing.
                        if _jobs_complete(db, job_ids):
                            break
                        raise SabhaError(
                            "Some shards can be neither leased nor finished.",
                            "Check the jobs' status with `sabha jobs show`.",
                        )
                    if on_wait:
                        on_wait(held_elsewhere)
                    time.sleep(wait_for_others)
                    continue
                if engine is None:
                    heartbeat.add(first)  # model loading can outlast a short lease
                    engine = engine_factory(first.model, first.max_model_len)
                    info = engine.info()
                assert info is not None
                # Twice the engine's own batch keeps it full while finished shards are saved.
                limit = max_in_flight or 2 * (info.max_num_seqs or 128)
                for lease, results in engine.generate_shards(leases(first), limit):
                    outcome = submit_shard_results(
                        db,
                        ShardResult(
                            run_id=lease.run_id,
                            token=lease.token,
                            results=results,
                            executed_on=info,
                            engine_seconds=clock.finish(lease.run_id),
                        ),
                    )
                    heartbeat.drop(lease.run_id)
                    if progress:
                        progress(len(results))
                    if outcome.job_complete:
                        finalize_job(db, lease.job_id)
            for job_id in job_ids:  # another pool may have submitted the last shard
                finalize_job(db, job_id)
        except BaseException as exc:
            reason = _reason(exc)
            for lease in heartbeat.leases():
                with contextlib.suppress(LeaseLost):
                    release_lease(db, lease.run_id, lease.token, reason)
            _settle_jobs(db, job_ids, None if isinstance(exc, KeyboardInterrupt) else reason)
            if isinstance(exc, EngineError | KeyboardInterrupt) or (
                isinstance(exc, SabhaError) and not isinstance(exc, ResultRejected)
            ):
                raise
            raise EngineError(
                f"Evaluation stopped: {reason}",
                "Finished shards are saved; run the same `sabha eval` command again to resume.",
            ) from exc
        finally:
            if engine is not None:
                engine.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(exc, SabhaError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _settle_jobs(db: Engine, job_ids: Sequence[int], error: str | None) -> None:
    """Leave no job ``running`` without a live lease: queued again, or failed with ``error``."""
    with session_scope(db) as session:
        for job_id in job_ids:
            job = session.get(Job, job_id)
            if job is None or job.status == JobStatus.COMPLETED:
                continue
            live = session.exec(
                select(ShardRun.id).where(
                    ShardRun.job_id == job_id, ShardRun.status == RunStatus.LEASED
                )
            ).first()
            if live is not None:
                continue
            job.status = JobStatus.FAILED if error else JobStatus.QUEUED
            job.error = error
            for shard in session.exec(
                select(Shard).where(Shard.job_id == job_id, Shard.status == ShardStatus.LEASED)
            ):
                shard.status = ShardStatus.QUEUED


def primary_summary(db: Engine, job_id: int) -> str | None:
    """``chrf++ = 1.92 (95% CI 1.66–2.19, n=108)`` for a scored job, else None."""
    with Session(db) as session:
        job = session.get(Job, job_id)
        assert job is not None
        benchmark = get_benchmark_for_job(session, job)
        score = session.exec(
            select(Score)
            .join(ScoringRun, col(ScoringRun.id) == Score.scoring_run_id)
            .where(
                ScoringRun.job_id == job_id,
                ScoringRun.scoring_hash == benchmark.scoring_hash,
                Score.metric == benchmark.primary_metric,
                Score.breakdown == "overall",
            )
        ).first()
        run = session.exec(
            select(ScoringRun).where(
                ScoringRun.job_id == job_id, ScoringRun.scoring_hash == benchmark.scoring_hash
            )
        ).first()
        if score is None or run is None:
            return None
        line = (
            f"{benchmark.primary_metric} = {score.value:.2f} "
            f"(95% CI {score.ci_low:.2f}–{score.ci_high:.2f}, n={score.n})"
        )
        if run.failed_items:
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(run.failure_reasons.items()))
            line += f"; {run.failed_items} items failed ({reasons}), scored as wrong"
        return line


def get_benchmark_for_job(session: Session, job: Job) -> Any:
    """The current benchmark definition that scores ``job`` (else the one that made it)."""
    from sabha.platform.domain import Benchmark

    made_by = session.get(Benchmark, job.benchmark_id)
    assert made_by is not None
    current = session.exec(
        select(Benchmark).where(
            Benchmark.name == made_by.name,
            col(Benchmark.is_current).is_(True),
            Benchmark.generation_hash == job.generation_hash,
        )
    ).first()
    return current or made_by


def model_of(db: Engine, name: str) -> Model:
    """The registered model ``name``."""
    with Session(db) as session:
        return get_model(session, name)
