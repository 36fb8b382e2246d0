"""Plan and report ``sabha eval``: the jobs of each model on each benchmark, their scores.

The work itself is done by a pool like any other (``local_pool.run_local_pool``:
the volunteer's agent with the platform in-process).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.platform.catalog import (
    check_model_unchanged,
    definition_for_job,
    get_benchmark,
    get_model,
)
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Job,
    JobStatus,
    Model,
    Score,
    ScoringRun,
    id_of,
)

from .budgets import load_token_counter
from .queue import (
    create_job,
    job_progress,
)

__all__ = ["ModelPlan", "pending_items", "plan_evaluation", "primary_summary"]


@dataclass
class ModelPlan:
    """One model's jobs that still need work."""

    model: str
    jobs: list[tuple[str, int]] = field(default_factory=list)  # (benchmark, job id)
    done: list[tuple[str, int]] = field(default_factory=list)


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
        check_model_unchanged(model)
    # Per-language budgets are measured with each model's tokenizer, read before
    # the write transaction (it may come from the hub).
    counters = {m.name: load_token_counter(m.as_source()) for m in models} if budgeted else {}
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


def primary_summary(db: Engine, job_id: int) -> str | None:
    """``chrf++ = 1.92 (95% CI 1.66–2.19, n=108)`` for a scored job, else None."""
    with Session(db) as session:
        job = session.get(Job, job_id)
        assert job is not None
        benchmark = definition_for_job(session, job)
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


def model_of(db: Engine, name: str) -> Model:
    """The registered model ``name``."""
    with Session(db) as session:
        return get_model(session, name)
