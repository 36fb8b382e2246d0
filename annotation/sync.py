"""Keep Sabha's copy of Label Studio annotations exact, one item (task) at a time.

Outside systems notify; Sabha checks. A webhook call only says that something
may have changed; what Sabha records is what Label Studio answers to Sabha's
own admin token when asked for the task's annotations. Both ways in, a
webhook and a reconciliation pull, end in ``reconcile_item``, which makes an
item's annotations exactly what Label Studio holds for its task now: a forged
or replayed notice changes nothing Label Studio does not say, and a missed one
loses nothing that the next pull does not bring.

What Label Studio holds is not recorded when it could not have come from the
labeling interface for its annotator (``refusal_reasons``): a result outside
the project's labeling config, or an annotation made or last changed by
another Label Studio user in its annotator's name. A refused annotation is
logged with its reasons and left out (an earlier copy is removed), until its
annotator changes it into one that holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlmodel import Session, col, delete, select

from sabha.platform.domain import (
    Annotation,
    AnnotationProject,
    AnnotationReview,
    SourceItem,
    id_of,
    utcnow,
)

from .configs import LabelingOptions, result_problems
from .labelstudio import LabelStudioAnnotation

__all__ = [
    "SyncReport",
    "delete_annotations",
    "reconcile_item",
    "refusal_reasons",
    "upsert_annotation",
]

logger = logging.getLogger("sabha.annotation.sync")


@dataclass
class SyncReport:
    """What one sync changed.

    Attributes:
        refused: Annotations Label Studio holds that Sabha did not record.
        problems: One line per refused annotation, with its reasons.
        judged: The changed annotations judge model answers: the community
            scores need refreshing.
    """

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    unknown_tasks: int = 0
    refused: int = 0
    problems: list[str] = field(default_factory=list)
    judged: bool = False

    def changed(self) -> bool:
        """Whether the sync created, updated or deleted anything."""
        return bool(self.created or self.updated or self.deleted)

    def add(self, outcome: str) -> None:
        """Count one upsert's outcome (``created``, ``updated``, ``unchanged``...)."""
        setattr(self, outcome, getattr(self, outcome) + 1)

    def merge(self, other: SyncReport) -> None:
        """Add another report's counts and problems to this one."""
        for name in ("created", "updated", "unchanged", "deleted", "unknown_tasks", "refused"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems.extend(other.problems)
        self.judged = self.judged or other.judged


def refusal_reasons(
    project: AnnotationProject, annotation: LabelStudioAnnotation, *, max_text_chars: int = 20_000
) -> list[str]:
    """Why Sabha does not record an annotation Label Studio holds (empty: it records it)."""
    reasons = []
    if annotation.made_by_someone_else:
        reasons.append(
            f"it was made or last changed by Label Studio user {annotation.updated_by}, "
            f"not by its annotator {annotation.user_id}"
        )
    reasons.extend(
        result_problems(
            project.task_type,
            LabelingOptions.from_json(project.options),
            annotation.result,
            max_text_chars=max_text_chars,
        )
    )
    return reasons


def upsert_annotation(session: Session, annotation: LabelStudioAnnotation) -> str:
    """Insert or update Sabha's row for one Label Studio annotation (no checks: see below).

    ``reconcile_item`` checks an annotation before it calls this; tests of
    what Sabha does with stored annotations call it directly.

    Returns:
        ``"created"``, ``"updated"``, ``"unchanged"``, or ``"unknown_tasks"``
        when the task is not one Sabha imported (it is then ignored).
    """
    item = session.exec(
        select(SourceItem).where(SourceItem.labelstudio_task_id == annotation.task_id)
    ).first()
    if item is None:
        return "unknown_tasks"
    row = session.exec(
        select(Annotation).where(Annotation.labelstudio_annotation_id == annotation.id)
    ).first()
    if row is None:
        session.add(
            Annotation(
                labelstudio_annotation_id=annotation.id,
                item_id=id_of(item),
                labelstudio_user_id=annotation.user_id,
                result=annotation.result,
                was_cancelled=annotation.was_cancelled,
                created_at=annotation.created_at,
                updated_at=annotation.updated_at,
            )
        )
        session.flush()
        return "created"
    if (
        row.result == annotation.result
        and row.was_cancelled == annotation.was_cancelled
        and row.labelstudio_user_id == annotation.user_id
        and row.item_id == id_of(item)
    ):
        return "unchanged"
    row.item_id = id_of(item)
    row.labelstudio_user_id = annotation.user_id
    row.result = annotation.result
    row.was_cancelled = annotation.was_cancelled
    row.updated_at = annotation.updated_at
    row.synced_at = utcnow()
    session.add(row)
    session.flush()
    return "updated"


def delete_annotations(session: Session, labelstudio_ids: Iterable[int]) -> int:
    """Remove annotations (and their reviews) Label Studio no longer holds; returns how many."""
    ids = list(
        session.exec(
            select(Annotation.id).where(
                col(Annotation.labelstudio_annotation_id).in_(list(labelstudio_ids))
            )
        ).all()
    )
    if not ids:
        return 0
    session.exec(delete(AnnotationReview).where(col(AnnotationReview.annotation_id).in_(ids)))
    session.exec(delete(Annotation).where(col(Annotation.id).in_(ids)))
    return len(ids)


def reconcile_item(
    session: Session,
    project: AnnotationProject,
    item: SourceItem,
    held: Sequence[LabelStudioAnnotation],
    *,
    max_text_chars: int = 20_000,
) -> SyncReport:
    """Make an item's annotations exactly those Label Studio ``held`` for its task, checked.

    Args:
        session: An open write transaction (the caller holds the item's lock).
        project: The item's project (its labeling config decides what holds).
        item: The source item.
        held: What Label Studio answered for the item's task just now (empty
            when the task is gone).
        max_text_chars: The longest free-text answer recorded.
    """
    report = SyncReport()
    kept: set[int] = set()
    for annotation in held:
        if annotation.task_id != item.labelstudio_task_id:
            continue  # Label Studio answered for another task: never trust it for this one
        reasons = refusal_reasons(project, annotation, max_text_chars=max_text_chars)
        if reasons:
            report.refused += 1
            line = (
                f"annotation {annotation.id} of item {item.key!r} ({project.dataset_name}, "
                f"{project.language}) by Label Studio user {annotation.user_id} is not "
                f"recorded: {'; '.join(reasons)}"
            )
            report.problems.append(line)
            logger.warning("%s", line)
            continue
        kept.add(annotation.id)
        report.add(upsert_annotation(session, annotation))
    stored = session.exec(
        select(Annotation.labelstudio_annotation_id).where(Annotation.item_id == id_of(item))
    ).all()
    report.deleted += delete_annotations(session, [i for i in stored if i not in kept])
    return report
