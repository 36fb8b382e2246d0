"""Release dataset versions: immutable, named by content hash, written to Parquet."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from sabha.platform.benchmarks import DatasetContent, LoadedBenchmark
from sabha.platform.domain import PUBLIC_SPLITS, Dataset, DatasetVersion, Item, id_of, utcnow
from sabha.platform.errors import ValidationFailed
from sabha.platform.files import atomic_write_text

from .cards import AnnotationFacts, build_data_card

__all__ = [
    "dataset_columns",
    "dataset_rows",
    "parquet_path",
    "release_dataset_version",
]


_ITEM_COLUMNS = ("id", "language", "region", "dialect", "split")


def _content(source: DatasetContent | LoadedBenchmark) -> DatasetContent:
    return source.dataset if isinstance(source, LoadedBenchmark) else source


def dataset_columns(source: DatasetContent | LoadedBenchmark) -> list[str]:
    """The released columns, in order: the item's own, every input field (over all
    items, in first-seen order), ``reference`` or ``label``, then the attributes.

    Raises:
        ValueError: two sources would write the same column (validation
            refuses this, so it means a bypassed check, never a user mistake).
    """
    data_set = _content(source)
    inputs = list(dict.fromkeys(name for item in data_set.items for name in item.input))
    answer = ["reference" if data_set.task == "generation" else "label"]
    columns = [*_ITEM_COLUMNS, *inputs, *answer, *data_set.attributes]
    clashes = sorted({name for name in columns if columns.count(name) > 1})
    if clashes:
        raise ValueError(
            f"columns {clashes} would be written twice (an input field or attribute named "
            "like an item column); rename them in the benchmark files"
        )
    return columns


def dataset_rows(source: DatasetContent | LoadedBenchmark) -> list[dict[str, Any]]:
    """The public items as flat rows (input fields and attributes become columns), in id order.

    Every row has every column of ``dataset_columns``; a field an item lacks is
    None. Items of a private held-out split (any split not in ``PUBLIC_SPLITS``)
    are never rows: they stay in the database for server-side evaluation.
    """
    data_set = _content(source)
    columns = dataset_columns(data_set)
    rows = []
    public = (item for item in data_set.items if item.split in PUBLIC_SPLITS)
    for item in sorted(public, key=lambda i: i.id):
        values: dict[str, Any] = {
            **item.attributes,
            "reference": item.reference,
            "label": item.label,
            **item.input,
            "id": item.id,
            "language": item.language,
            "region": item.region,
            "dialect": item.dialect,
            "split": item.split,
        }
        rows.append({name: values.get(name) for name in columns})
    return rows


def parquet_path(artifacts_dir: Path, dataset_name: str, content_hash: str) -> Path:
    """``<artifacts>/datasets/<name>/<content hash>.parquet`` (its card: ``.README.md``)."""
    return artifacts_dir / "datasets" / dataset_name / f"{content_hash}.parquet"


def _write_parquet(rows: list[dict[str, Any]], destination: Path) -> None:
    """Write rows with the ``datasets`` library, atomically (temp file, then rename)."""
    import datasets

    datasets.disable_progress_bars()
    columns = list(dict.fromkeys(name for row in rows for name in row))  # union, in order
    features = datasets.Features({name: datasets.Value("string") for name in columns})
    rows = [{name: row.get(name) for name in columns} for row in rows]
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
    session: Session,
    source: DatasetContent | LoadedBenchmark,
    artifacts_dir: Path,
    *,
    annotation: AnnotationFacts | None = None,
    written: list[Path] | None = None,
) -> tuple[DatasetVersion, bool]:
    """Release rows and card metadata as a dataset version, or find the existing one.

    ``source`` is a dataset file (``load_dataset_file``), rows gathered
    elsewhere (e.g. from annotation) as ``DatasetContent``, or a benchmark
    file with inline items. ``annotation`` adds the agreement table, the
    number of annotators and what was left out to the card.

    A version is named by its dataset and its content hash: the same items
    under another dataset name are another dataset's version, with that
    name's licence and card. What a file declares is never silently
    replaced: a licence other than the dataset's, or card text other than
    the released version's, is refused.

    Items of a private split are stored (``Item`` rows) but are neither in the
    Parquet file nor on the card; the content hash covers them too, so the same
    public and private items give the same version.

    The Parquet file and its data card (``<hash>.README.md`` beside it) are
    written before the database rows; if that fails, the new files are removed
    again. ``written`` collects the files created, for a caller whose
    transaction holds several releases and must remove them if it rolls back.

    Returns:
        The version, and whether it was created now.

    Raises:
        ValidationFailed: the licence or card differs from what was released
            under this dataset name (each problem names the file, line and field).
    """
    data_set = _content(source)
    digest = data_set.content_hash
    dataset = session.exec(select(Dataset).where(Dataset.name == data_set.name)).first()
    existing = (
        None
        if dataset is None
        else session.exec(
            select(DatasetVersion).where(
                DatasetVersion.dataset_id == dataset.id, DatasetVersion.content_hash == digest
            )
        ).first()
    )
    _refuse_replaced_metadata(data_set, dataset, existing)
    destination = parquet_path(artifacts_dir, data_set.name, digest)
    if existing is not None:
        if not Path(existing.artifact_uri or "").is_file():
            if written is not None and not destination.exists():
                written.append(destination)
            _write_parquet(dataset_rows(data_set), destination)  # same content, same name
        return existing, False

    if dataset is None:
        dataset = Dataset(name=data_set.name, title=data_set.title, license=data_set.license)
        session.add(dataset)
        session.flush()

    card_file = destination.with_suffix(".README.md")
    created_files = [p for p in (destination, card_file) if not p.exists()]
    card = str(build_data_card(data_set, annotation=annotation))
    _write_parquet(dataset_rows(data_set), destination)
    atomic_write_text(card_file, card)  # the card travels with the Parquet file
    if written is not None:
        written.extend(created_files)
    try:
        version = DatasetVersion(
            dataset_id=id_of(dataset),
            content_hash=digest,
            item_count=len(data_set.items),
            languages=list(data_set.languages),
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
            for item in data_set.items
        )
        session.flush()
        version.released_at = utcnow()
        session.flush()
    except BaseException:
        for path in created_files:
            path.unlink(missing_ok=True)
        raise
    return version, True


_CARD_SECTIONS = ("summary", "collection_process", "intended_use", "limitations")


def _refuse_replaced_metadata(
    data_set: DatasetContent, dataset: Dataset | None, existing: DatasetVersion | None
) -> None:
    """Refuse a licence or card text that would be dropped in favour of what was released."""
    problems: list[str] = []
    if dataset is not None and dataset.license != data_set.license:
        problems.append(
            f"{data_set.where('license')}: {data_set.license!r}, but dataset "
            f"{data_set.name!r} is released under {dataset.license!r}; a dataset keeps its "
            f"licence: write {dataset.license!r}, or release the data under another dataset name"
        )
    if existing is not None and existing.card_markdown is not None:
        for section in _CARD_SECTIONS:
            if getattr(data_set.card, section) not in existing.card_markdown:
                problems.append(
                    f"{data_set.where(f'card.{section}')}: differs from the card released with "
                    f"{data_set.name}@{existing.content_hash[:12]} (the same items); a released "
                    "version's card does not change: restore the released text, or release the "
                    "corrected card with changed items (a new version) or under another name"
                )
    if problems:
        raise ValidationFailed(
            f"{data_set.origin or data_set.source} would replace what dataset "
            f"{data_set.name!r} was released with.",
            problems,
            "Change the fields listed above.",
        )
