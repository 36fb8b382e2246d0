"""A model's page: every benchmark and language it was scored on, its other revisions.

Built from the read model (``leaderboard_entry``) of the current benchmarks,
so a model page costs the same few queries whatever the number of models.
The model-index snippet for a Hugging Face model card is built from the same
page (``..model_index``).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, func, select

from sabha.platform.domain import Benchmark, Dataset, DatasetVersion, LeaderboardEntry, Model
from sabha.platform.errors import NotFoundError

from ..metrics import get_metric
from ..public import (
    Cell,
    ComparedBenchmark,
    ModelComparison,
    ModelPage,
    ModelScore,
    VersionedScore,
    tie_fields,
)
from ._cards import benchmark_public_of, model_public

__all__ = ["compare_models", "model_page"]


def _published_models() -> Any:
    """The ids of models ranked on some leaderboard (a subquery)."""
    return select(LeaderboardEntry.model_id).distinct()


def _over_versions(scores: list[VersionedScore]) -> list[VersionedScore]:
    """A benchmark's scores over its versions, where there is more than one to show."""
    return scores if len(scores) > 1 else []


def model_page(session: Session, name: str) -> ModelPage:
    """What the site says about one model: its ranked scores on every current benchmark.

    Only models with a published score have a page: a model registered by a
    submission whose job has not completed stays private, like that job.

    Raises:
        NotFoundError: no model of that name with a published score.
    """
    model = session.exec(
        select(Model).where(Model.name == name, col(Model.id).in_(_published_models()))
    ).first()
    if model is None:
        raise NotFoundError(
            f"There is no model named {name!r} with published scores.",
            "Follow a model link from a leaderboard.",
        )
    every = session.exec(
        select(LeaderboardEntry, Benchmark, DatasetVersion, Dataset)
        .join(Benchmark, col(Benchmark.id) == LeaderboardEntry.benchmark_id)
        .join(DatasetVersion, col(DatasetVersion.id) == Benchmark.dataset_version_id)
        .join(Dataset, col(Dataset.id) == DatasetVersion.dataset_id)
        .where(LeaderboardEntry.model_id == model.id)
        .order_by(col(Benchmark.name), col(Benchmark.id))
    ).all()
    found = [row for row in every if row[1].is_current]
    history: dict[str, list[VersionedScore]] = {}
    for entry, benchmark, version, _ in every:
        cell = entry.cells["scores"].get(benchmark.primary_metric)
        if cell is not None:
            history.setdefault(benchmark.name, []).append(
                VersionedScore(
                    version=benchmark.version,
                    dataset_version=version.content_hash,
                    metric_label=get_metric(benchmark.primary_metric).label,
                    score=Cell.model_validate(cell),
                    current=benchmark.is_current,
                    run_url=f"/jobs/{entry.job_id}",
                )
            )
    ranked = dict(
        session.exec(
            select(LeaderboardEntry.benchmark_id, func.count())
            .where(
                col(LeaderboardEntry.benchmark_id).in_([benchmark.id for _, benchmark, *_ in found])
            )
            .group_by(col(LeaderboardEntry.benchmark_id))
        ).all()
    )
    scores = []
    for entry, benchmark, version, dataset in found:
        published = benchmark_public_of(benchmark, version, dataset)
        cells = entry.cells
        primary = cells["scores"].get(benchmark.primary_metric)
        scores.append(
            ModelScore(
                benchmark=published,
                rank=entry.rank,
                ranked=int(ranked.get(entry.benchmark_id, 0)),
                **tie_fields(entry.tied_with),
                job_id=entry.job_id,
                run_url=f"/jobs/{entry.job_id}",
                score=Cell.model_validate(primary) if primary else None,
                languages={
                    tag: Cell.model_validate(cell)
                    for tag, cell in cells["breakdowns"].get("language", {}).items()
                },
                history=_over_versions(history.get(benchmark.name, [])),
            )
        )
    revisions: list[Model] = []
    if model.repo_id is not None:
        revisions = list(
            session.exec(
                select(Model)
                .where(
                    Model.repo_id == model.repo_id,
                    Model.id != model.id,
                    col(Model.id).in_(_published_models()),
                )
                .order_by(col(Model.created_at).desc())
            ).all()
        )
    return ModelPage(
        model=model_public(model),
        other_revisions=[model_public(other) for other in revisions],
        scores=scores,
        languages=sorted({tag for score in scores for tag in score.languages}),
    )


def compare_models(session: Session, first: str, second: str) -> ModelComparison:
    """Two models side by side on every current benchmark both are ranked on, per language.

    Raises:
        NotFoundError: either model has no published score, or they share no benchmark.
    """
    a, b = model_page(session, first), model_page(session, second)
    theirs = {score.benchmark.name: score for score in b.scores}
    compared = [
        ComparedBenchmark(
            benchmark=mine.benchmark,
            scores=(mine.score, theirs[mine.benchmark.name].score),
            languages={
                tag: (mine.languages.get(tag), theirs[mine.benchmark.name].languages.get(tag))
                for tag in sorted(set(mine.languages) | set(theirs[mine.benchmark.name].languages))
            },
        )
        for mine in a.scores
        if mine.benchmark.name in theirs
    ]
    if not compared:
        raise NotFoundError(
            f"{first!r} and {second!r} are not ranked on a common benchmark.",
            "Compare models that share a leaderboard.",
        )
    return ModelComparison(models=(a.model, b.model), benchmarks=compared)
