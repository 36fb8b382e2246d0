"""A dataset's page: its released versions, items per split and language, card and download.

Counts come from the items themselves. Items of a private held-out split are
counted only as a total per version (never per language, never listed):
they stay on the server. Only released versions with a data card are shown:
a version without one is internal (a judge model's prompts, ``judge_model.py``),
and ``data_card`` refuses it by the same rule.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlmodel import Session, col, func, select

from sabha.platform.domain import (
    PUBLIC_SPLITS,
    AnnotationProject,
    Benchmark,
    Dataset,
    DatasetVersion,
    Item,
    as_utc,
)
from sabha.platform.errors import NotFoundError

from ..public import AgreementPublic, DatasetPage, DatasetVersionPublic

__all__ = ["annotated_through_sabha", "dataset_file", "dataset_page"]


def annotated_through_sabha(session: Session, name: str) -> bool:
    """Whether dataset ``name`` was annotated through Sabha (it has a community project)."""
    return (
        session.exec(
            select(AnnotationProject.id).where(
                AnnotationProject.dataset_name == name, col(AnnotationProject.private).is_(False)
            )
        ).first()
        is not None
    )


def dataset_page(session: Session, name: str) -> DatasetPage:
    """Every released version of dataset ``name``, newest first.

    Raises:
        NotFoundError: no dataset of that name with a released version.
    """
    dataset = session.exec(select(Dataset).where(Dataset.name == name)).first()
    versions = (
        list(
            session.exec(
                select(DatasetVersion)
                .where(
                    DatasetVersion.dataset_id == dataset.id,
                    col(DatasetVersion.released_at).is_not(None),
                    col(DatasetVersion.card_markdown).is_not(None),
                )
                .order_by(col(DatasetVersion.id).desc())
            ).all()
        )
        if dataset is not None
        else []
    )
    if dataset is None or not versions:
        raise NotFoundError(
            f"There is no released dataset named {name!r}.",
            "Follow a dataset link from a leaderboard or a data card.",
        )
    ids = [version.id for version in versions]
    counts: dict[int, dict[str, dict[str, int]]] = {}
    held_out: dict[int, int] = {}
    for version_id, split, language, n in session.exec(
        select(Item.dataset_version_id, Item.split, Item.language, func.count())
        .where(col(Item.dataset_version_id).in_(ids))
        .group_by(col(Item.dataset_version_id), col(Item.split), col(Item.language))
    ).all():
        if split in PUBLIC_SPLITS:
            by_split = counts.setdefault(version_id, {}).setdefault(split, {})
            by_split[language] = int(n)
        else:
            held_out[version_id] = held_out.get(version_id, 0) + int(n)
    measured_by: dict[int, list[str]] = {}
    for benchmark in session.exec(
        select(Benchmark).where(
            col(Benchmark.dataset_version_id).in_(ids), col(Benchmark.is_current)
        )
    ).all():
        measured_by.setdefault(benchmark.dataset_version_id, []).append(benchmark.name)
    return DatasetPage(
        name=dataset.name,
        title=dataset.title,
        license=dataset.license,
        items_url=(
            f"/datasets/{dataset.name}/items" if annotated_through_sabha(session, name) else None
        ),
        versions=[
            DatasetVersionPublic(
                version=version.content_hash,
                released_at=as_utc(version.released_at),
                items=version.item_count,
                languages=list(version.languages),
                splits={
                    split: dict(sorted(languages.items()))
                    for split, languages in sorted(counts.get(version.id or 0, {}).items())
                },
                held_out=held_out.get(version.id or 0, 0),
                card_url=f"/datasets/{dataset.name}/card?version={version.content_hash}",
                parquet_url=(
                    f"/datasets/{dataset.name}/{version.content_hash}.parquet"
                    if version.artifact_uri and Path(version.artifact_uri).is_file()
                    else None
                ),
                benchmarks=sorted(measured_by.get(version.id or 0, [])),
                agreement=card_agreement(version.card_markdown or ""),
            )
            for version in versions
        ],
    )


def dataset_file(session: Session, name: str, version: str) -> Path:
    """The public Parquet file of a released version (public splits only).

    Raises:
        NotFoundError: no such released version, or its file is not on this server.
    """
    found = session.exec(
        select(DatasetVersion)
        .join(Dataset, col(Dataset.id) == DatasetVersion.dataset_id)
        .where(
            Dataset.name == name,
            DatasetVersion.content_hash == version,
            col(DatasetVersion.released_at).is_not(None),
            col(DatasetVersion.card_markdown).is_not(None),
        )
    ).first()
    path = Path(found.artifact_uri) if found is not None and found.artifact_uri else None
    if path is None or not path.is_file():
        raise NotFoundError(
            f"There is no downloadable file of {name!r} version {version[:12]!r}.",
            f"See /datasets/{name} for the versions that have one.",
        )
    return path


_AGREEMENT_HEADER = "| language | field | statistic | agreement | items |"
_AGREEMENT_ROW = re.compile(
    r"\| `(?P<language>[A-Za-z0-9-]+)` \| (?P<field>[^|]+?) \| (?P<statistic>[^|]+?) \| "
    r"(?P<value>-?[0-9.]+|—) \| (?P<items>[0-9]+) \|"
)


def card_agreement(card_markdown: str) -> list[AgreementPublic]:
    """The agreement table of an annotated release's card (``annotation/cards.py`` writes
    it), row by row; none for a card without one."""
    if _AGREEMENT_HEADER not in card_markdown:
        return []
    table = card_markdown.split(_AGREEMENT_HEADER, 1)[1]
    rows = []
    for line in table.splitlines()[2:]:
        found = _AGREEMENT_ROW.match(line.strip())
        if found is None:
            break
        value = found["value"]
        rows.append(
            AgreementPublic(
                language=found["language"],
                field=found["field"].strip(),
                statistic=found["statistic"].strip(),
                value=None if value == "—" else float(value),
                items=int(found["items"]),
            )
        )
    return rows
