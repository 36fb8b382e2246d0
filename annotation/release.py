"""Release dataset versions: immutable, named by content hash, written to Parquet."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from sabha.platform.benchmarks import LoadedBenchmark
from sabha.platform.domain import Benchmark, Dataset, DatasetVersion, Item, id_of, utcnow
from sabha.platform.files import atomic_write_text

from .cards import build_data_card

__all__ = ["dataset_rows", "parquet_path", "register_benchmark", "release_dataset_version"]


def dataset_rows(loaded: LoadedBenchmark) -> list[dict[str, Any]]:
    """The items as flat rows (input fields and attributes become columns), in id order."""
    rows = []
    for item in sorted(loaded.items, key=lambda i: i.id):
        row: dict[str, Any] = {
            "id": item.id,
            "language": item.language,
            "region": item.region,
            "dialect": item.dialect,
            "split": item.split,
        }
        row.update(item.input)
        if loaded.spec.task == "generation":
            row["reference"] = item.reference
        else:
            row["label"] = item.label
        row.update({name: item.attributes.get(name) for name in loaded.spec.attributes})
        rows.append(row)
    return rows


def parquet_path(artifacts_dir: Path, dataset_name: str, content_hash: str) -> Path:
    """``<artifacts>/datasets/<name>/<content hash>.parquet`` (its card: ``.README.md``)."""
    return artifacts_dir / "datasets" / dataset_name / f"{content_hash}.parquet"


def _write_parquet(rows: list[dict[str, Any]], destination: Path) -> None:
    """Write rows with the ``datasets`` library, atomically (temp file, then rename)."""
    import datasets

    datasets.disable_progress_bars()
    features = datasets.Features({name: datasets.Value("string") for name in rows[0]})
    table = datasets.Dataset.from_list(rows, features=features)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    os.close(fd)
    try:
        table.to_parquet(temporary)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def release_dataset_version(
    session: Session, loaded: LoadedBenchmark, artifacts_dir: Path
) -> tuple[DatasetVersion, bool]:
    """Release the benchmark's items as a dataset version, or find the existing one.

    The Parquet file and its data card (``<hash>.README.md`` beside it) are
    written before the database rows; if that fails, the new files are removed
    again.

    Returns:
        The version, and whether it was created now.
    """
    spec = loaded.spec
    digest = loaded.content_hash
    existing = session.exec(
        select(DatasetVersion).where(DatasetVersion.content_hash == digest)
    ).first()
    destination = parquet_path(artifacts_dir, spec.dataset.name, digest)
    if existing is not None:
        if not Path(existing.artifact_uri or "").is_file():
            _write_parquet(dataset_rows(loaded), destination)  # same content, same name
        return existing, False

    dataset = session.exec(select(Dataset).where(Dataset.name == spec.dataset.name)).first()
    if dataset is None:
        dataset = Dataset(name=spec.dataset.name, title=spec.title, license=spec.dataset.license)
        session.add(dataset)
        session.flush()

    card_file = destination.with_suffix(".README.md")
    created_files = [p for p in (destination, card_file) if not p.exists()]
    card = str(build_data_card(loaded))
    _write_parquet(dataset_rows(loaded), destination)
    atomic_write_text(card_file, card)  # the card travels with the Parquet file
    try:
        version = DatasetVersion(
            dataset_id=id_of(dataset),
            content_hash=digest,
            item_count=len(loaded.items),
            languages=list(spec.languages),
            artifact_uri=str(destination),
            card_markdown=card,
        )
        session.add(version)
        session.flush()
        session.add_all(
            Item(
                dataset_version_id=id_of(version),
                key=item.id,
                language=item.language,
                dialect=item.dialect,
                region=item.region,
                split=item.split,
                input=dict(item.input),
                reference=item.reference,
                label=item.label,
                attributes=dict(item.attributes),
            )
            for item in loaded.items
        )
        session.flush()
        version.released_at = utcnow()
        session.flush()
    except BaseException:
        for path in created_files:
            path.unlink(missing_ok=True)
        raise
    return version, True


def register_benchmark(
    session: Session, loaded: LoadedBenchmark, artifacts_dir: Path
) -> tuple[Benchmark, bool]:
    """Release the dataset version and record the benchmark definition.

    Loading the same file twice changes nothing; a changed definition or
    changed items add a new benchmark row under the same name.

    Returns:
        The benchmark, and whether anything new was created.
    """
    version, version_created = release_dataset_version(session, loaded, artifacts_dir)
    digest = loaded.definition_hash
    existing = session.exec(select(Benchmark).where(Benchmark.definition_hash == digest)).first()
    if existing is not None:
        return existing, version_created
    spec = loaded.spec
    benchmark = Benchmark(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        task=spec.task,
        dataset_version_id=id_of(version),
        prompt_template=spec.prompt.template,
        system_prompt=spec.prompt.system,
        labels=list(spec.labels),
        metrics=list(spec.metrics),
        primary_metric=spec.primary_metric,
        breakdowns=list(spec.breakdowns),
        languages=list(spec.languages),
        decoding=spec.decoding.model_dump(),
        definition_hash=digest,
    )
    session.add(benchmark)
    session.flush()
    return benchmark, True
