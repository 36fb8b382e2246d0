"""What an annotator can do next: items in their languages that still need them.

An item needs a person while it has fewer than k annotators (the project's
``annotations_per_item``) counting the people it was handed to
(``overlap.next_items_for``), and they have neither annotated nor skipped it.
Items handed to them come first. Reading this list hands nothing out: the
page is a GET and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from sabha.platform.domain import (
    Annotation,
    AnnotationAssignment,
    AnnotationProject,
    SourceItem,
    User,
    id_of,
)

from .annotation import linked_labelstudio_users
from .annotators import JoinableProject, projects_for_annotator

__all__ = ["NEXT_ITEMS_SHOWN", "NextWork", "ProjectWork", "WaitingItem", "next_work_for"]

NEXT_ITEMS_SHOWN = 20


@dataclass(frozen=True)
class WaitingItem:
    """An item that still needs this annotator, with its Label Studio task."""

    project_id: int
    key: str
    labelstudio_project_id: int
    labelstudio_task_id: int
    private: bool
    annotators: int  # people who annotated it so far
    needed: int  # annotators the project asks for (k)
    handed_to_you: bool


@dataclass(frozen=True)
class ProjectWork:
    """A project open to the annotator and how many of its items wait for them."""

    project: JoinableProject
    waiting: int


@dataclass(frozen=True)
class NextWork:
    """The first items that need an annotator, and the count per project."""

    items: list[WaitingItem]
    projects: list[ProjectWork]

    @property
    def total(self) -> int:
        """Items waiting for the annotator, in every project."""
        return sum(p.waiting for p in self.projects)


def next_work_for(session: Session, user: User, limit: int = NEXT_ITEMS_SHOWN) -> NextWork:
    """The items in the annotator's languages that still need them (the first ``limit``)."""
    joinable = projects_for_annotator(session, user)
    if not joinable:
        return NextWork([], [])
    projects = {
        id_of(p): p
        for p in session.exec(
            select(AnnotationProject).where(col(AnnotationProject.id).in_([j.id for j in joinable]))
        ).all()
    }
    items = session.exec(
        select(SourceItem.id, SourceItem.project_id, SourceItem.key, SourceItem.labelstudio_task_id)
        .where(
            col(SourceItem.project_id).in_(list(projects)),
            col(SourceItem.labelstudio_task_id).is_not(None),
        )
        .order_by(col(SourceItem.id))
    ).all()
    item_ids = [int(i or 0) for i, _p, _k, _t in items]
    done: dict[int, set[int]] = {}
    touched: dict[int, set[int]] = {}
    for item_id, person, cancelled in session.exec(
        select(Annotation.item_id, Annotation.labelstudio_user_id, Annotation.was_cancelled).where(
            col(Annotation.item_id).in_(item_ids)
        )
    ).all():
        touched.setdefault(item_id, set()).add(person)
        if not cancelled:
            done.setdefault(item_id, set()).add(person)
    handed: dict[int, set[int]] = {}
    for item_id, person in session.exec(
        select(AnnotationAssignment.item_id, AnnotationAssignment.labelstudio_user_id).where(
            col(AnnotationAssignment.item_id).in_(item_ids)
        )
    ).all():
        handed.setdefault(item_id, set()).add(person)
    mine = set(linked_labelstudio_users(session, id_of(user)))
    waiting: list[WaitingItem] = []
    for row_id, project_id, key, task_id in items:
        source_id = int(row_id or 0)
        people, project = done.get(source_id, set()), projects[project_id]
        if mine & touched.get(source_id, set()):
            continue
        open_to = handed.get(source_id, set())
        to_me = bool(mine & open_to)
        busy = people | (open_to - mine) if not to_me else people
        if len(busy) >= project.annotations_per_item:
            continue
        waiting.append(
            WaitingItem(
                project_id=project_id,
                key=key,
                labelstudio_project_id=int(project.labelstudio_project_id or 0),
                labelstudio_task_id=int(task_id or 0),
                private=project.private,
                annotators=len(people),
                needed=project.annotations_per_item,
                handed_to_you=to_me,
            )
        )
    order = {j.id: n for n, j in enumerate(joinable)}
    waiting.sort(key=lambda w: (not w.handed_to_you, order[w.project_id]))
    counts: dict[int, int] = {}
    for item in waiting:
        counts[item.project_id] = counts.get(item.project_id, 0) + 1
    return NextWork(
        items=waiting[:limit],
        projects=[ProjectWork(j, counts.get(j.id, 0)) for j in joinable],
    )
