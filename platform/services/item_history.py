"""The public annotation history of a released item: who annotated it, when, who reviewed it.

Only items of a public split are shown, and only when they are public in
every released version of their dataset and their source item is still
public (not moved to the held-out split, not on the private Label Studio).
Everything else, an item that does not exist included, gets one and the same
"not found", so the pages cannot be used to learn which items are held out.

People are shown by the profile name they chose (``services.profiles``) or
anonymously: "annotator 3" is the third person to annotate in the dataset's
public projects (by their first annotation), "reviewer 2" the second to
review there. The numbers stay the same for a dataset as people add work,
and say nothing about accounts. The answers and the reviewers' comments are
not shown: the released item carries the gold answer, and the history says
only who did what, and when.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, func, select

from sabha.annotation.votes import annotation_version, votes_of
from sabha.platform.domain import (
    PUBLIC_SPLITS,
    Annotation,
    AnnotationProject,
    AnnotationReview,
    Dataset,
    DatasetVersion,
    Item,
    LabelStudioAccount,
    ReviewVerdict,
    SourceItem,
    as_utc,
    id_of,
)
from sabha.platform.errors import NotFoundError

from .profiles import public_names

__all__ = [
    "AnnotatedItemsPage",
    "AnnotationShown",
    "ItemHistory",
    "PersonShown",
    "ReviewShown",
    "annotated_items_page",
    "is_annotated_dataset",
    "item_history",
]

ITEMS_PER_PAGE = 100


@dataclass(frozen=True)
class PersonShown:
    """A person as public pages show them: their profile name, or a number in the dataset."""

    number: int
    profile: str | None = None


@dataclass(frozen=True)
class ReviewShown:
    """One review of an annotation; ``counts`` when it reviewed the version the vote has now."""

    reviewer: PersonShown
    verdict: str
    at: datetime | None
    counts: bool


@dataclass(frozen=True)
class AnnotationShown:
    """One annotation of the item: ``status`` is ``vote``, ``replaced`` or ``skipped``."""

    annotator: PersonShown
    created_at: datetime | None
    updated_at: datetime | None
    status: str
    reviews: list[ReviewShown] = field(default_factory=list)


@dataclass(frozen=True)
class ItemHistory:
    """A released public item and every annotation of it."""

    dataset_name: str
    dataset_title: str
    item: str
    language: str
    split: str
    versions: list[str]
    annotations_per_item: int
    annotations: list[AnnotationShown]


@dataclass(frozen=True)
class AnnotatedItemsPage:
    """The public items of a dataset's newest released version, each with a history."""

    dataset_name: str
    dataset_title: str
    version: str
    items: list[tuple[str, str, str]]  # released id, language, split
    total: int
    page: int
    per_page: int


def _not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"There is no public annotated item of that id in {name!r}.",
        f"Pick an item from /datasets/{name}/items.",
    )


def _released(session: Session, name: str) -> tuple[Dataset, list[DatasetVersion]] | None:
    dataset = session.exec(select(Dataset).where(Dataset.name == name)).first()
    if dataset is None:
        return None
    versions = session.exec(
        select(DatasetVersion)
        .where(
            DatasetVersion.dataset_id == id_of(dataset),
            col(DatasetVersion.released_at).is_not(None),
            col(DatasetVersion.card_markdown).is_not(None),
        )
        .order_by(col(DatasetVersion.id).desc())
    ).all()
    return (dataset, list(versions)) if versions else None


def _public_projects(session: Session, name: str) -> dict[str, AnnotationProject]:
    """The dataset's community (not private) annotation projects, by language."""
    return {
        p.language: p
        for p in session.exec(
            select(AnnotationProject).where(
                AnnotationProject.dataset_name == name, col(AnnotationProject.private).is_(False)
            )
        ).all()
    }


def _held_out_keys(session: Session, version_ids: list[int]) -> set[str]:
    """Released ids that are in a non-public split of any of these versions."""
    return set(
        session.exec(
            select(Item.key).where(
                col(Item.dataset_version_id).in_(version_ids),
                col(Item.split).not_in(PUBLIC_SPLITS),
            )
        ).all()
    )


def _public_sources(
    session: Session, projects: dict[str, AnnotationProject], items: Sequence[tuple[str, str]]
) -> dict[str, SourceItem]:
    """Released id -> its source item, for the items whose source is public."""
    wanted: dict[int, dict[str, str]] = {}
    for key, language in items:
        project = projects.get(language)
        prefix = f"{language}."
        if project is not None and key.startswith(prefix):
            wanted.setdefault(id_of(project), {})[key.removeprefix(prefix)] = key
    found: dict[str, SourceItem] = {}
    for project_id, keys in wanted.items():
        for source in session.exec(
            select(SourceItem).where(
                SourceItem.project_id == project_id, col(SourceItem.key).in_(list(keys))
            )
        ).all():
            if source.split in PUBLIC_SPLITS:
                found[keys[source.key]] = source
    return found


def is_annotated_dataset(session: Session, name: str) -> bool:
    """Whether a dataset was annotated through Sabha (it has a community project)."""
    return bool(_public_projects(session, name))


def annotated_items_page(session: Session, name: str, page: int = 1) -> AnnotatedItemsPage:
    """The public items of the newest released version of an annotated dataset, a page of them.

    Raises:
        NotFoundError: no released dataset of that name annotated through Sabha.
    """
    released = _released(session, name)
    projects = _public_projects(session, name)
    if released is None or not projects:
        raise NotFoundError(
            f"There is no released annotated dataset named {name!r}.",
            "Follow a link from a dataset page.",
        )
    dataset, versions = released
    held_out = _held_out_keys(session, [id_of(v) for v in versions])
    rows = [
        (key, language, split)
        for key, language, split in session.exec(
            select(Item.key, Item.language, Item.split)
            .where(Item.dataset_version_id == id_of(versions[0]))
            .order_by(col(Item.language), col(Item.key))
        ).all()
        if split in PUBLIC_SPLITS and key not in held_out
    ]
    sources = _public_sources(session, projects, [(key, language) for key, language, _ in rows])
    shown = [row for row in rows if row[0] in sources]
    page = max(page, 1)
    start = (page - 1) * ITEMS_PER_PAGE
    return AnnotatedItemsPage(
        dataset_name=dataset.name,
        dataset_title=dataset.title,
        version=versions[0].content_hash,
        items=shown[start : start + ITEMS_PER_PAGE],
        total=len(shown),
        page=page,
        per_page=ITEMS_PER_PAGE,
    )


def _numbers(rows: Sequence[tuple[int | None, int | None]]) -> dict[int, int]:
    """Person -> their number, ordered by the first thing they did (1, 2, ...)."""
    ordered = sorted((int(first or 0), int(person or 0)) for person, first in rows)
    return {person: n for n, (_first, person) in enumerate(ordered, start=1)}


def item_history(session: Session, name: str, item: str) -> ItemHistory:
    """The annotation history of released item ``item`` (``<language>.<key>``) of ``name``.

    Raises:
        NotFoundError: no such public item: unknown dataset or item, an item of
            a held-out split in any released version, a source item moved to
            the held-out split or on the private Label Studio (one answer for all).
    """
    released = _released(session, name)
    projects = _public_projects(session, name)
    if released is None or not projects:
        raise _not_found(name)
    dataset, versions = released
    by_version = {id_of(v): v.content_hash for v in versions}
    found = session.exec(
        select(Item.dataset_version_id, Item.language, Item.split).where(
            col(Item.dataset_version_id).in_(list(by_version)), Item.key == item
        )
    ).all()
    if not found or any(split not in PUBLIC_SPLITS for _v, _l, split in found):
        raise _not_found(name)
    language = found[0][1]
    source = _public_sources(session, projects, [(item, language)]).get(item)
    if source is None:
        raise _not_found(name)
    project_ids = [id_of(p) for p in projects.values()]
    annotator_number = _numbers(
        session.exec(
            select(Annotation.labelstudio_user_id, func.min(Annotation.labelstudio_annotation_id))
            .join(SourceItem, col(SourceItem.id) == col(Annotation.item_id))
            .where(col(SourceItem.project_id).in_(project_ids))
            .group_by(col(Annotation.labelstudio_user_id))
        ).all()
    )
    reviewer_number = _numbers(
        session.exec(
            select(AnnotationReview.reviewer_id, func.min(AnnotationReview.id))
            .join(Annotation, col(Annotation.id) == col(AnnotationReview.annotation_id))
            .join(SourceItem, col(SourceItem.id) == col(Annotation.item_id))
            .where(col(SourceItem.project_id).in_(project_ids))
            .group_by(col(AnnotationReview.reviewer_id))
        ).all()
    )
    annotations = session.exec(
        select(Annotation)
        .where(Annotation.item_id == id_of(source))
        .order_by(col(Annotation.labelstudio_annotation_id))
    ).all()
    reviews: dict[int, list[AnnotationReview]] = {}
    for review in session.exec(
        select(AnnotationReview)
        .where(col(AnnotationReview.annotation_id).in_([id_of(a) for a in annotations]))
        .order_by(col(AnnotationReview.id))
    ).all():
        reviews.setdefault(review.annotation_id, []).append(review)
    sabha_user = dict(
        session.exec(
            select(LabelStudioAccount.labelstudio_user_id, LabelStudioAccount.user_id).where(
                col(LabelStudioAccount.labelstudio_user_id).in_(
                    [a.labelstudio_user_id for a in annotations]
                )
            )
        ).all()
    )
    reviewers = {r.reviewer_id for held in reviews.values() for r in held}
    names = public_names(session, set(sabha_user.values()) | reviewers)
    votes = {id_of(v) for v in votes_of(annotations)}
    shown = []
    for annotation in annotations:
        version = annotation_version(annotation.result)
        user_id = sabha_user.get(annotation.labelstudio_user_id)
        shown.append(
            AnnotationShown(
                annotator=PersonShown(
                    annotator_number.get(annotation.labelstudio_user_id, 0),
                    names.get(user_id) if user_id is not None else None,
                ),
                created_at=as_utc(annotation.created_at),
                updated_at=as_utc(annotation.updated_at),
                status=(
                    "skipped"
                    if annotation.was_cancelled
                    else "vote"
                    if id_of(annotation) in votes
                    else "replaced"
                ),
                reviews=[
                    ReviewShown(
                        reviewer=PersonShown(
                            reviewer_number.get(r.reviewer_id, 0), names.get(r.reviewer_id)
                        ),
                        verdict=ReviewVerdict(r.verdict).value,
                        at=as_utc(r.created_at),
                        counts=r.annotation_version == version and id_of(annotation) in votes,
                    )
                    for r in reviews.get(id_of(annotation), [])
                ],
            )
        )
    return ItemHistory(
        dataset_name=dataset.name,
        dataset_title=dataset.title,
        item=item,
        language=language,
        split=source.split,
        versions=[by_version[v] for v in sorted({v for v, _l, _s in found}, reverse=True)],
        annotations_per_item=projects[language].annotations_per_item,
        annotations=shown,
    )
