"""Evaluation on this machine (`sabha eval`) and the jobs it makes."""

from __future__ import annotations

from collections.abc import Sequence

import click
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from ..settings import Settings
from ..wire import MAX_DB_ID
from .context import database, settings_of, stand_in_engine_option

__all__ = ["eval_command", "evaluate", "jobs"]


# -- evaluation -----------------------------------------------------------------------


@click.command("eval")
@click.option("--model", "model_names", multiple=True, required=True, help="Registered model name.")
@click.option(
    "--benchmark", "benchmark_names", multiple=True, required=True, help="Loaded benchmark name."
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 4096),
    help="Most items in the engine at once (default: twice the engine's batch; "
    "SABHA_EVAL_BATCH_SIZE).",
)
@click.option("--verbose", is_flag=True, help="Show Ray's and vLLM's own logs.")
@stand_in_engine_option
@click.pass_context
def eval_command(
    ctx: click.Context,
    model_names: Sequence[str],
    benchmark_names: Sequence[str],
    batch_size: int | None,
    verbose: bool,
    stand_in_seconds: float | None,
) -> None:
    """Evaluate models on benchmarks with vLLM in a local Ray actor.

    Each shard is saved as soon as it completes: an interrupted run resumes, and
    two `sabha eval` processes on the same job share its shards.
    Options can be repeated to evaluate several models and benchmarks.
    """
    settings = settings_of(ctx)
    db = database(ctx)
    evaluate(db, settings, model_names, benchmark_names, batch_size, verbose, stand_in_seconds)


def evaluate(
    db: Engine,
    settings: Settings,
    model_names: Sequence[str],
    benchmark_names: Sequence[str],
    batch_size: int | None = None,
    verbose: bool = False,
    stand_in_seconds: float | None = None,
) -> None:
    """Evaluate each model on each benchmark through the local pool (used by eval and demo).

    ``stand_in_seconds`` (tests only) answers with the stand-in engine instead of vLLM.
    """
    from sabha.workers.volunteer import engine_factory

    from ..services.evaluate import pending_items, plan_evaluation, primary_summary
    from ..services.local_pool import run_local_pool

    plans = plan_evaluation(db, model_names, benchmark_names, settings.shard_size)
    for plan in plans:
        for benchmark_name, job_id in plan.done:
            click.echo(f"{plan.model} on {benchmark_name}: done already (job {job_id})")
    work = [plan for plan in plans if plan.jobs]
    if not work:
        return
    if stand_in_seconds is None:
        from sabha.workers.local import ensure_ray

        ensure_ray(settings.ray_address, quiet=not verbose)
    for plan in work:
        job_ids = [job_id for _, job_id in plan.jobs]
        pending, total = pending_items(db, job_ids)
        names = ", ".join(name for name, _ in plan.jobs)
        if stand_in_seconds is None:
            click.echo(f"Starting vLLM for {plan.model} (about half a minute on CPU)...")
        with click.progressbar(
            length=total, label=f"{plan.model} on {names}", show_pos=True
        ) as bar:
            bar.update(total - pending)
            run_local_pool(
                db,
                job_ids,
                engine_factory(settings.vllm_memory_fraction, stand_in_seconds),
                lease_seconds=settings.lease_seconds,
                max_in_flight=batch_size or settings.eval_batch_size,
                progress=bar.update,
            )
        for benchmark_name, job_id in plan.jobs:
            click.echo(f"{plan.model} on {benchmark_name} (job {job_id})")
            summary = primary_summary(db, job_id)
            if summary:
                click.echo(f"  {summary}")


# -- jobs -----------------------------------------------------------------------------


@click.group()
def jobs() -> None:
    """Show jobs (a model on a benchmark) and their shards."""


@jobs.command("list")
@click.pass_context
def jobs_list(ctx: click.Context) -> None:
    """List jobs with their status and progress."""
    from ..domain import Benchmark, Job, Model
    from ..services.queue import job_progress

    with Session(database(ctx)) as session:
        rows = session.exec(
            select(Job, Model.name, Benchmark.name)
            .join(Model, Model.id == Job.model_id)  # type: ignore[arg-type]
            .join(Benchmark, Benchmark.id == Job.benchmark_id)  # type: ignore[arg-type]
            .order_by(Job.id)  # type: ignore[arg-type]
        ).all()
        if not rows:
            click.echo("No jobs yet. Run `sabha eval --model M --benchmark B`.")
        for job, model, benchmark in rows:
            progress = job_progress(session, job.id)  # type: ignore[arg-type]
            note = f"  superseded by job {job.superseded_by_id}" if job.superseded_by_id else ""
            click.echo(
                f"{job.id:5}  {model:24} {benchmark:20} {job.status:10} "
                f"{progress.completed_shards}/{progress.shards} shards, "
                f"{progress.leased_shards} leased{note}"
            )


@jobs.command("show")
@click.argument("job_id", type=click.IntRange(1, MAX_DB_ID))
@click.pass_context
def jobs_show(ctx: click.Context, job_id: int) -> None:
    """Show one job's shards: their runs, leases and which pool's results count."""
    from ..domain import Job
    from ..errors import NotFoundError
    from ..services.queue import shard_states

    with Session(database(ctx)) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFoundError(f"There is no job {job_id}.", "List jobs with `sabha jobs list`.")
        click.echo(f"Job {job_id}: {job.status}" + (f" ({job.error})" if job.error else ""))
        for state in shard_states(session, job_id):
            runs = ", ".join(f"#{a} {s} by {p}" for a, s, p in state.runs) or "not run yet"
            click.echo(f"  shard {state.index:3} {state.items:4} items  {state.status:9}  {runs}")
