"""What the site says about a model, a dataset version, a benchmark and a data card."""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from sabha.platform.catalog import latest_benchmarks
from sabha.platform.domain import (
    Benchmark,
    Dataset,
    DatasetVersion,
    LeaderboardEntry,
    Model,
    as_utc,
    id_of,
)
from sabha.platform.errors import NotFoundError

from ..metrics import get_metric
from ..public import (
    BenchmarkPublic,
    BenchmarkSummary,
    DataCardPublic,
    DatasetPublic,
    ModelPublic,
)

__all__ = [
    "benchmark_public",
    "benchmark_public_of",
    "benchmark_summaries",
    "data_card",
    "dataset_public",
    "model_public",
]


def model_public(model: Model) -> ModelPublic:
    """A registered model as published."""
    return ModelPublic(
        name=model.name,
        source=model.source,
        repo_id=model.repo_id,
        revision=model.revision,
        smoke_test=model.smoke_test,
        description=model.description,
    )


def dataset_public(version: DatasetVersion, dataset: Dataset) -> DatasetPublic:
    """A released dataset version as published, with the link to its card."""
    return DatasetPublic(
        name=dataset.name,
        license=dataset.license,
        version=version.content_hash,
        items=version.item_count,
        released_at=as_utc(version.released_at),
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
        dataset=dataset_public(version, dataset), card_markdown=str(version.card_markdown)
    )


def benchmark_public_of(
    benchmark: Benchmark, version: DatasetVersion, dataset: Dataset
) -> BenchmarkPublic:
    """A benchmark definition as published, its dataset version already at hand."""
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
        dataset=dataset_public(version, dataset),
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
    return benchmark_public_of(benchmark, version, dataset)


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
