"""Overlap: k independent annotations per item, from k different people.

Items are handed out to annotators (one hand-out per item and person), and
a Sabha user is linked to the one Label Studio user they annotate as.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.annotation.votes import votes_of
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Annotation,
    AnnotationAssignment,
    AnnotationProject,
    LabelStudioAccount,
    SourceItem,
)
from sabha.platform.errors import NotFoundError, SabhaError

__all__ = [
    "annotator_counts",
    "items_needing_annotations",
    "link_labelstudio_account",
    "next_items_for",
]


def _annotators_by_item(session: Session, project_id: int) -> dict[int, set[int]]:
    """Every item of a project with the people who annotated it (skipped ones do not count)."""
    rows = session.exec(
        select(SourceItem.id, Annotation.labelstudio_user_id)
        .join(
            Annotation,
            (col(Annotation.item_id) == col(SourceItem.id))
            & col(Annotation.was_cancelled).is_(False),
            isouter=True,
        )
        .where(SourceItem.project_id == project_id)
    ).all()
    found: dict[int, set[int]] = {}
    for item_id, user_id in rows:
        people = found.setdefault(int(item_id or 0), set())
        if user_id is not None:
            people.add(int(user_id))
    return found


def items_needing_annotations(db: Engine, project_id: int) -> dict[str, int]:
    """Items with fewer than k annotations from different annotators: key -> how many missing."""
    with Session(db) as session:
        project = session.get(AnnotationProject, project_id)
        if project is None:
            raise NotFoundError(f"Annotation project {project_id} does not exist.")
        people = _annotators_by_item(session, project_id)
        keys = dict(
            session.exec(
                select(SourceItem.id, SourceItem.key).where(SourceItem.project_id == project_id)
            ).all()
        )
    k = project.annotations_per_item
    return {keys[i]: k - len(p) for i, p in sorted(people.items()) if len(p) < k}


def next_items_for(db: Engine, project_id: int, labelstudio_user_id: int, n: int = 10) -> list[int]:
    """Hand an annotator up to ``n`` items that still need annotations, never their own twice.

    An item is offered while it has fewer than k annotators plus open
    assignments; each hand-out is recorded (one per item and annotator), so
    the k annotations of an item come from k different people.

    Returns:
        The Label Studio task ids to annotate.
    """
    with session_scope(db) as session:
        project = session.get(AnnotationProject, project_id)
        if project is None:
            raise NotFoundError(f"Annotation project {project_id} does not exist.")
        people = _annotators_by_item(session, project_id)
        assigned: dict[int, set[int]] = {}
        for item_id, user_id in session.exec(
            select(AnnotationAssignment.item_id, AnnotationAssignment.labelstudio_user_id)
            .join(SourceItem, col(SourceItem.id) == col(AnnotationAssignment.item_id))
            .where(SourceItem.project_id == project_id)
        ).all():
            assigned.setdefault(item_id, set()).add(user_id)
        tasks: dict[int, int] = {
            int(item_id): int(task_id)
            for item_id, task_id in session.exec(
                select(SourceItem.id, SourceItem.labelstudio_task_id).where(
                    SourceItem.project_id == project_id,
                    col(SourceItem.labelstudio_task_id).is_not(None),
                )
            ).all()
            if item_id is not None and task_id is not None
        }
        chosen: list[int] = []
        for item_id in sorted(tasks):
            done, open_ = people.get(item_id, set()), assigned.get(item_id, set())
            if labelstudio_user_id in done | open_:
                continue
            if len(done | open_) >= project.annotations_per_item:
                continue
            session.add(
                AnnotationAssignment(item_id=item_id, labelstudio_user_id=labelstudio_user_id)
            )
            chosen.append(tasks[item_id])
            if len(chosen) >= n:
                break
        return chosen


def annotator_counts(db: Engine, project_id: int) -> dict[int, int]:
    """Votes (items annotated, not skipped) per Label Studio user id."""
    with Session(db) as session:
        annotations = session.exec(
            select(Annotation)
            .join(SourceItem, col(SourceItem.id) == col(Annotation.item_id))
            .where(SourceItem.project_id == project_id)
        ).all()
    return dict(Counter(a.labelstudio_user_id for a in votes_of(annotations)))


def link_labelstudio_account(
    db: Engine,
    user_id: int,
    labelstudio_user_id: int,
    labelstudio_username: str,
    private: bool = False,
) -> LabelStudioAccount:
    """Record which Label Studio user a Sabha user annotates as (once per user and server)."""
    with session_scope(db) as session:
        account = session.exec(
            select(LabelStudioAccount).where(
                LabelStudioAccount.user_id == user_id, LabelStudioAccount.private == private
            )
        ).first() or LabelStudioAccount(
            user_id=user_id,
            labelstudio_user_id=labelstudio_user_id,
            labelstudio_username=labelstudio_username,
            private=private,
        )
        if account.labelstudio_user_id != labelstudio_user_id:
            raise SabhaError(
                f"User {user_id} is linked to Label Studio user {account.labelstudio_user_id} "
                "already.",
                "One Sabha user annotates as one Label Studio user.",
            )
        session.add(account)
        session.flush()
        return account
