"""The audit bundle of a scoring run: its published numbers and what they were computed from.

The bundle (format: ``sabha.leaderboards.audit``) holds the scoring run's
spec, signatures, bootstrap settings and published scores; the job (model,
revision, decoding, generation identity); the dataset version and its card;
each shard with the runs whose results counted or agreed; and the accepted
output of every public item in scoring order. Items of a private split
enter only as hashes. Built from the rows as stored, so the same run gives
the same bytes on every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from sabha.leaderboards.audit import item_hash, output_hash, sha256_hex, write_bundle
from sabha.leaderboards.scoring import DEFAULT_MIN_ITEMS
from sabha.platform.catalog import definition_for_job
from sabha.platform.domain import (
    PUBLIC_SPLITS,
    Benchmark,
    Dataset,
    DatasetVersion,
    Item,
    Job,
    Model,
    Output,
    Pool,
    RunStatus,
    RunVerdict,
    Score,
    ScoringRun,
    Shard,
    ShardRun,
    as_utc,
    id_of,
)
from sabha.platform.errors import NotFoundError

from .scoring import HELD_OUT_BREAKDOWN, CountedOutput, accepted_outputs

__all__ = ["AuditBundleFile", "ScoringRunLink", "audit_bundle_of_job", "scoring_runs_of_job"]

_CHUNK = 5000  # ids per IN (...) query


@dataclass(frozen=True)
class AuditBundleFile:
    """A built bundle: its file name, bytes and SHA-256."""

    filename: str
    data: bytes
    sha256: str


@dataclass(frozen=True)
class ScoringRunLink:
    """A scoring run of a job, as its page lists it beside the bundle's link."""

    id: int
    benchmarks: list[str]
    scoring_hash: str


def _when(moment: datetime | None) -> str | None:
    utc = as_utc(moment)
    return utc.isoformat() if utc else None


def _benchmarks(session: Session, job: Job, run: ScoringRun) -> list[str]:
    """``name@version`` of the definitions that score ``job`` with ``run``'s identity."""
    rows = session.exec(
        select(Benchmark).where(
            Benchmark.scoring_hash == run.scoring_hash,
            (col(Benchmark.generation_hash) == job.generation_hash)
            | (col(Benchmark.id) == job.benchmark_id),
        )
    ).all()
    return sorted(f"{b.name}@{b.version}" for b in rows)


def scoring_runs_of_job(session: Session, job_id: int) -> list[ScoringRunLink]:
    """Every scoring run of job ``job_id``, oldest first (none for a missing job)."""
    job = session.get(Job, job_id)
    if job is None:
        return []
    runs = session.exec(
        select(ScoringRun).where(ScoringRun.job_id == job_id).order_by(col(ScoringRun.id))
    ).all()
    return [ScoringRunLink(id_of(r), _benchmarks(session, job, r), r.scoring_hash) for r in runs]


def _shown_run(session: Session, job: Job) -> ScoringRun | None:
    """The scoring run a job's page shows: its current definition's, else the newest."""
    benchmark = definition_for_job(session, job)
    runs = session.exec(
        select(ScoringRun).where(ScoringRun.job_id == job.id).order_by(col(ScoringRun.id).desc())
    ).all()
    own = [r for r in runs if r.scoring_hash == benchmark.scoring_hash]
    return next(iter(own or runs), None)


def audit_bundle_of_job(
    session: Session, job_id: int, scoring_run_id: int | None = None
) -> AuditBundleFile:
    """The audit bundle of one scoring run of job ``job_id`` (default: the one its page shows).

    The caller decides who may see the job (``status.check_run_visible``).

    Raises:
        NotFoundError: no such job, the job has no scoring run, or
            ``scoring_run_id`` is not one of its runs.
    """
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"There is no run {job_id}.", "Pick a run from a leaderboard.")
    run = (
        _shown_run(session, job)
        if scoring_run_id is None
        else session.exec(
            select(ScoringRun).where(ScoringRun.id == scoring_run_id, ScoringRun.job_id == job_id)
        ).first()
    )
    if run is None:
        which = "has no scores yet" if scoring_run_id is None else "has no such scoring run"
        raise NotFoundError(
            f"Job {job_id} {which}, so there is no audit bundle.",
            "Pick a scoring run listed on the job's page (/jobs/<id>).",
        )
    data = build_audit_bundle(session, job, run)
    return AuditBundleFile(
        filename=f"sabha-audit-job{job_id}-scoring{id_of(run)}.zip",
        data=data,
        sha256=sha256_hex(data),
    )


def _item_rows(
    session: Session, counted: list[CountedOutput]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Public item rows (fields, output, hashes) and private hash rows, in scoring order."""
    items: dict[int | None, Item] = {}
    ids = [o.output_id for o in counted]
    for start in range(0, len(ids), _CHUNK):
        for output_id, item in session.exec(
            select(Output.id, Item)
            .join(Item, col(Item.id) == Output.item_id)
            .where(col(Output.id).in_(ids[start : start + _CHUNK]))
        ):
            items[output_id] = item
    public: list[dict[str, Any]] = []
    private: list[dict[str, str]] = []
    for output in counted:
        item = items[output.output_id]
        fields: dict[str, Any] = {
            "id": item.key,
            "language": item.language,
            "region": item.region,
            "dialect": item.dialect,
            "split": item.split,
            "input": dict(item.input),
            "reference": item.reference,
            "label": item.label,
            "attributes": dict(item.attributes),
        }
        hashes = {
            "item_hash": item_hash(fields),
            "output_hash": output_hash(fields, output.text, output.error),
        }
        if item.split in PUBLIC_SPLITS:
            public.append({**fields, "output": output.text, "error": output.error, **hashes})
        else:
            private.append(hashes)
    return public, private


def _shards(session: Session, job_id: int) -> list[dict[str, Any]]:
    """Each shard with its runs that returned results: who ran it, whether it counted or agreed."""
    shards = session.exec(
        select(Shard).where(Shard.job_id == job_id).order_by(col(Shard.index))
    ).all()
    runs = session.exec(
        select(ShardRun, Pool.name)
        .join(Pool, col(Pool.id) == ShardRun.pool_id)
        .where(
            ShardRun.job_id == job_id,
            col(ShardRun.status).in_([RunStatus.ACCEPTED, RunStatus.SUBMITTED]),
        )
        .order_by(col(ShardRun.id))
    ).all()
    by_shard: dict[int, list[dict[str, Any]]] = {}
    accepted = {shard.accepted_run_id for shard in shards}
    for run, pool in runs:
        by_shard.setdefault(run.shard_id, []).append(
            {
                "pool": pool,
                "replica": run.replica,
                "attempt": run.attempt,
                "status": run.status,
                "verdict": run.verdict,
                "check_reason": run.check_reason,
                "counted": id_of(run) in accepted,
                "executed_on": dict(run.executed_on or {}),
            }
        )
    return [
        {
            "index": shard.index,
            "items": len(shard.item_ids),
            "server_only": shard.server_only,
            "runs": [
                r
                for r in by_shard.get(id_of(shard), [])
                if r["counted"] or r["verdict"] == RunVerdict.AGREED
            ],
        }
        for shard in shards
    ]


def build_audit_bundle(session: Session, job: Job, run: ScoringRun) -> bytes:
    """The bundle's bytes for scoring run ``run`` of ``job`` (see the module)."""
    model = session.get(Model, job.model_id)
    version = session.get(DatasetVersion, job.generation["dataset_version_id"])
    assert model is not None and version is not None  # foreign keys
    dataset = session.get(Dataset, version.dataset_id)
    assert dataset is not None
    counted = accepted_outputs(session, id_of(job))
    public, private = _item_rows(session, counted)
    scores = session.exec(
        select(Score).where(Score.scoring_run_id == run.id).order_by(col(Score.id))
    ).all()
    manifest = {
        "scoring_run": {
            "id": id_of(run),
            "scoring_hash": run.scoring_hash,
            "spec": dict(run.spec),
            "signatures": dict(run.signatures),
            "n_resamples": run.n_resamples,
            "seed": run.seed,
            "confidence": run.confidence,
            "min_items": DEFAULT_MIN_ITEMS,  # what score_job uses
            "items": run.items,
            "failed_items": run.failed_items,
            "failure_reasons": dict(run.failure_reasons),
            "pools": list(run.pools),
            "created_at": _when(run.created_at),
        },
        "scores": [
            {
                "metric": s.metric,
                "breakdown": s.breakdown,
                "group": s.group,
                "value": s.value,
                "ci_low": s.ci_low,
                "ci_high": s.ci_high,
                "n": s.n,
                "too_few": s.too_few,
                "signature": s.signature,
            }
            for s in scores
        ],
        "held_out": (
            {"breakdown": HELD_OUT_BREAKDOWN, "group": "private", "items": len(private)}
            if private
            else None
        ),
        "job": {
            "id": id_of(job),
            "status": job.status,
            "model": {
                "name": model.name,
                "source": model.source,
                "repo_id": model.repo_id,
                "revision": model.revision,
                "smoke_test": model.smoke_test,
            },
            "benchmarks": _benchmarks(session, job, run),
            "generation_hash": job.generation_hash,
            "generation": dict(job.generation),
            "decoding": dict(job.decoding),
            "created_at": _when(job.created_at),
            "finished_at": _when(job.finished_at),
        },
        "dataset": {
            "name": dataset.name,
            "license": dataset.license,
            "content_hash": version.content_hash,
            "item_count": version.item_count,
            "languages": list(version.languages),
            "released_at": _when(version.released_at),
        },
        "shards": _shards(session, id_of(job)),
    }
    return write_bundle(manifest, public, private, version.card_markdown)
