"""Leaderboard data: one benchmark's completed runs, ranked, with CIs and provenance.

The same dictionaries feed the HTML pages, the JSON API and the CSV export.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from sabha.platform.catalog import get_benchmark, latest_benchmarks
from sabha.platform.domain import (
    Benchmark,
    Dataset,
    DatasetVersion,
    Item,
    Job,
    JobStatus,
    Model,
    Output,
    Score,
    Shard,
)
from sabha.platform.errors import NotFoundError

from .metrics import get_metric
from .ranking import rank_by_interval

__all__ = ["benchmark_summaries", "leaderboard", "run_details"]


def _iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC; SQLite hands back naive datetimes, and Sabha stores UTC."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _cell(score: Score) -> dict[str, Any]:
    return {
        "value": round(score.value, 4),
        "ci_low": round(score.ci_low, 4),
        "ci_high": round(score.ci_high, 4),
        "n": score.n,
    }


def _model_public(model: Model) -> dict[str, Any]:
    return {
        "name": model.name,
        "source": model.source,
        "repo_id": model.repo_id,
        "revision": model.revision,
        "smoke_test": model.smoke_test,
        "description": model.description,
    }


def _dataset_public(session: Session, version: DatasetVersion) -> dict[str, Any]:
    dataset = session.get(Dataset, version.dataset_id)
    assert dataset is not None
    return {
        "name": dataset.name,
        "license": dataset.license,
        "version": version.content_hash,
        "items": version.item_count,
        "released_at": _iso(version.released_at),
        "card_url": f"/datasets/{dataset.name}/card?version={version.content_hash}",
    }


def _benchmark_public(session: Session, benchmark: Benchmark) -> dict[str, Any]:
    version = session.get(DatasetVersion, benchmark.dataset_version_id)
    assert version is not None
    return {
        "name": benchmark.name,
        "title": benchmark.title,
        "description": benchmark.description,
        "task": benchmark.task,
        "languages": benchmark.languages,
        "metrics": benchmark.metrics,
        "primary_metric": benchmark.primary_metric,
        "primary_metric_label": get_metric(benchmark.primary_metric).label,
        "higher_is_better": get_metric(benchmark.primary_metric).higher_is_better,
        "breakdowns": benchmark.breakdowns,
        "labels": benchmark.labels,
        "dataset": _dataset_public(session, version),
        "definition_hash": benchmark.definition_hash,
    }


def benchmark_summaries(session: Session) -> list[dict[str, Any]]:
    """Every current benchmark with its dataset and number of ranked models."""
    summaries = []
    for benchmark in latest_benchmarks(session):
        summary = _benchmark_public(session, benchmark)
        summary["models"] = len(
            session.exec(
                select(Job.id).where(
                    Job.benchmark_id == benchmark.id, Job.status == JobStatus.COMPLETED
                )
            ).all()
        )
        summaries.append(summary)
    return summaries


def leaderboard(session: Session, benchmark_name: str) -> dict[str, Any]:
    """The ranked table of a benchmark.

    Raises:
        NotFoundError: unknown benchmark.
    """
    benchmark = get_benchmark(session, benchmark_name)
    primary = get_metric(benchmark.primary_metric)
    jobs = session.exec(
        select(Job, Model)
        .join(Model, col(Model.id) == Job.model_id)
        .where(Job.benchmark_id == benchmark.id, Job.status == JobStatus.COMPLETED)
    ).all()
    rows: dict[str, dict[str, Any]] = {}
    groups: dict[str, set[str]] = {}
    for job, model in jobs:
        scores = session.exec(select(Score).where(Score.job_id == job.id)).all()
        row: dict[str, Any] = {
            "model": _model_public(model),
            "job_id": job.id,
            "run_url": f"/runs/{job.id}",
            "finished_at": _iso(job.finished_at),
            "scores": {},
            "breakdowns": {},
        }
        for score in scores:
            if score.breakdown == "overall":
                row["scores"][score.metric] = _cell(score)
            elif score.metric == benchmark.primary_metric:
                row["breakdowns"].setdefault(score.breakdown, {})[score.group] = _cell(score)
                groups.setdefault(score.breakdown, set()).add(score.group)
        if benchmark.primary_metric in row["scores"]:
            rows[model.name] = row
    ranked = rank_by_interval(
        [
            (
                name,
                r["scores"][benchmark.primary_metric]["value"],
                r["scores"][benchmark.primary_metric]["ci_low"],
                r["scores"][benchmark.primary_metric]["ci_high"],
            )
            for name, r in rows.items()
        ],
        higher_is_better=primary.higher_is_better,
    )
    ordered = []
    for entry in ranked:
        row = rows[entry.key]
        row["rank"] = entry.rank
        ordered.append(row)
    language_order = [tag for tag in benchmark.languages if tag in groups.get("language", set())]
    return {
        "benchmark": _benchmark_public(session, benchmark),
        "columns": {
            "metrics": [
                *benchmark.metrics,
                *(["unparseable"] if benchmark.task == "classification" else []),
            ],
            "metric_labels": {m: get_metric(m).label for m in [*benchmark.metrics, "unparseable"]},
            "higher_is_better": {
                m: get_metric(m).higher_is_better for m in [*benchmark.metrics, "unparseable"]
            },
            "breakdowns": {
                name: (language_order if name == "language" else sorted(values))
                for name, values in groups.items()
            },
        },
        "rows": ordered,
    }


def run_details(session: Session, job_id: int, sample_size: int = 10) -> dict[str, Any]:
    """Provenance of one run: dataset version, model, decoding, where it ran, every score.

    Raises:
        NotFoundError: no such run.
    """
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"There is no run {job_id}.", "Pick a run from a leaderboard.")
    model = session.get(Model, job.model_id)
    benchmark = session.get(Benchmark, job.benchmark_id)
    assert model is not None and benchmark is not None
    shards = session.exec(
        select(Shard).where(Shard.job_id == job_id).order_by(col(Shard.index))
    ).all()
    scores = sorted(
        session.exec(select(Score).where(Score.job_id == job_id)).all(),
        key=lambda s: (s.metric, s.breakdown != "overall", s.breakdown, s.group),
    )
    signatures = {s.metric: s.signature for s in scores if s.signature}
    outputs = session.exec(
        select(Output).where(Output.job_id == job_id, Output.replica == 0).order_by(col(Output.id))
    ).all()
    samples = []
    for output in outputs[:sample_size]:
        item = session.get(Item, output.item_id)
        assert item is not None
        samples.append(
            {
                "item": item.key,
                "language": item.language,
                "prompt": output.prompt,
                "output": output.text,
                "reference": item.reference,
                "label": item.label,
            }
        )
    return {
        "run": {
            "id": job.id,
            "status": job.status,
            "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at),
            "error": job.error,
            "decoding": job.decoding,
        },
        "benchmark": _benchmark_public(session, benchmark),
        "prompt_template": benchmark.prompt_template,
        "system_prompt": benchmark.system_prompt,
        "model": _model_public(model),
        "executed_on": [
            {
                "shard": shard.index,
                "items": len(shard.item_ids),
                "status": shard.status,
                "attempts": shard.attempts,
                "finished_at": _iso(shard.finished_at),
                **(shard.executed_on or {}),
            }
            for shard in shards
        ],
        "metric_signatures": signatures,
        "scores": [
            {"metric": s.metric, "breakdown": s.breakdown, "group": s.group, **_cell(s)}
            for s in scores
        ],
        "outputs": len(outputs),
        "samples": samples,
    }
