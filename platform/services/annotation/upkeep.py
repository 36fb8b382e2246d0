"""Keeping annotation projects right between releases.

- Reconciliation on a schedule: :func:`sync_annotation_projects` pulls every
  project from Label Studio once (``sabha annotations sync --every SECONDS``
  calls it in a loop), so a webhook that never arrived is healed within one
  period, whether the project is a dataset's or a judging project's.
- Webhooks for every project Sabha opens in Label Studio:
  :func:`webhook_url_for` is the endpoint given to ``provision`` and ``judge``.
- A maintainer corrects an item before release: :func:`set_item_split` fixes
  a wrong split, :func:`withdraw_item` removes an item (its Label Studio task
  and annotations too) and keeps a :class:`~sabha.platform.domain.WithdrawnItem`
  record of what it was and why. Released versions never change: both act on
  the next release.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from sabha.annotation.gold import PRIVATE_SPLIT, SOURCE_SPLITS
from sabha.annotation.labelstudio import LabelStudioClient
from sabha.annotation.sync import SyncReport, delete_annotations
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Annotation,
    AnnotationAssignment,
    AnnotationProject,
    JudgedResponse,
    SourceItem,
    WithdrawnItem,
    id_of,
)
from sabha.platform.errors import NotFoundError, SabhaError, ValidationFailed
from sabha.platform.settings import Settings

from .projects import get_annotation_project
from .readback import sync_project

__all__ = [
    "WEBHOOK_PATH",
    "ProjectSync",
    "SyncRound",
    "set_item_split",
    "sync_annotation_projects",
    "webhook_url_for",
    "withdraw_item",
]

WEBHOOK_PATH = "/hooks/labelstudio"
MAX_REASON_CHARS = 500


def webhook_url_for(settings: Settings, given: str | None = None) -> str | None:
    """Sabha's webhook endpoint as Label Studio reaches it.

    ``given`` when set, else ``SABHA_PUBLIC_URL`` + ``/hooks/labelstudio``,
    else None (no webhook: the scheduled sync alone keeps Sabha's copy right).
    """
    if given:
        return given
    if settings.public_url:
        return settings.public_url.rstrip("/") + WEBHOOK_PATH
    return None


@dataclass(frozen=True)
class ProjectSync:
    """One project's outcome in a sync round: a report, or why Label Studio was not read."""

    project_id: int
    title: str
    dataset_name: str
    report: SyncReport | None
    error: str | None = None


@dataclass
class SyncRound:
    """What one round of :func:`sync_annotation_projects` did."""

    projects: list[ProjectSync] = field(default_factory=list)
    # Community scores stored from judgements (None: no judging project was synced).
    community_scores: int | None = None

    def failed(self) -> bool:
        """Whether any project could not be synced."""
        return any(p.report is None for p in self.projects)


def sync_annotation_projects(
    db: Engine,
    client_for: Callable[[AnnotationProject], LabelStudioClient],
    dataset: str | None = None,
    max_text_chars: int = 20_000,
) -> SyncRound:
    """Pull every project open in Label Studio (or ``dataset``'s) once; safe to repeat.

    A project whose Label Studio cannot be reached is reported with the error
    and the others are still synced. When a judging project was synced, the
    leaderboards' community columns are refreshed (judgements by people, and
    by a judge model whose job has finished since).

    Args:
        db: Sabha's database.
        client_for: The Label Studio client of a project.
        dataset: Only this dataset's projects.
        max_text_chars: The longest text an annotation may hold (``SABHA_MAX_FIELD_CHARS``).
    """
    from ..community_scores import refresh_community_scores

    with Session(db) as session:
        query = select(AnnotationProject).where(
            col(AnnotationProject.labelstudio_project_id).is_not(None)
        )
        if dataset:
            query = query.where(AnnotationProject.dataset_name == dataset)
        projects = session.exec(query.order_by(col(AnnotationProject.id))).all()
    done = SyncRound()
    judging = False
    for project in projects:
        try:
            report = sync_project(
                db, client_for(project), id_of(project), max_text_chars=max_text_chars
            )
        except SabhaError as exc:
            done.projects.append(
                ProjectSync(id_of(project), project.title, project.dataset_name, None, str(exc))
            )
            continue
        done.projects.append(
            ProjectSync(id_of(project), project.title, project.dataset_name, report)
        )
        judging = judging or report.judged or project.dataset_name.startswith("judging-")
    if judging:
        done.community_scores = refresh_community_scores(db)
    return done


def _item(session: Session, dataset: str, language: str, key: str, private: bool) -> SourceItem:
    project = get_annotation_project(session, dataset, language, private)
    item = session.exec(
        select(SourceItem).where(SourceItem.project_id == id_of(project), SourceItem.key == key)
    ).first()
    if item is None:
        raise NotFoundError(
            f"{project.title} has no item {key!r}.",
            "Check the id: it is the `id` field of the uploaded row.",
        )
    return item


def set_item_split(
    db: Engine, dataset: str, language: str, key: str, split: str, *, private: bool = False
) -> str:
    """Correct the split of one source item before release; returns the split it had.

    An item of a community project may move between the public splits; the
    private split is only for items of the dataset's private project, which
    no other annotator has seen (``private_items.py``).

    Raises:
        ValidationFailed: an unknown split, ``private`` for a community item, or
            another split for an item of the private project.
        NotFoundError: no such project or item.
    """
    where = f"Cannot change the split of {dataset} ({language}) item {key!r}:"
    if split not in SOURCE_SPLITS:
        raise ValidationFailed(
            where, [f"split {split!r} is unknown; use one of {', '.join(SOURCE_SPLITS)}"]
        )
    if private and split != PRIVATE_SPLIT:
        raise ValidationFailed(
            where,
            [f"split {split!r}: the private project holds the private held-out split only"],
            "Withdraw the item here and upload it to the community project.",
        )
    if not private and split == PRIVATE_SPLIT:
        raise ValidationFailed(
            where,
            [
                "split 'private': the item is in a community project, where every annotator "
                "can read it, so it cannot be held out"
            ],
            "Withdraw it (sabha annotations withdraw) and upload a new item to the dataset's "
            "private project (upload --private).",
        )
    with session_scope(db) as session:
        item = _item(session, dataset, language, key, private)
        old = item.split
        item.split = split
        session.add(item)
    return old


def withdraw_item(
    db: Engine,
    client: LabelStudioClient | None,
    dataset: str,
    language: str,
    key: str,
    reason: str,
    *,
    private: bool = False,
) -> WithdrawnItem:
    """Withdraw one source item before release: from Label Studio, then from Sabha.

    Its Label Studio task goes first (with the annotations made there), so a
    later sync cannot bring them back; then, in one transaction, its reviews,
    annotations and hand-outs, and the item itself, leaving a
    :class:`WithdrawnItem` with the reason. Items of judging projects are not
    withdrawn: they are a sample of a job's answers.

    Raises:
        ValidationFailed: no reason, or one over 500 characters.
        NotFoundError: no such project or item.
        SabhaError: the item is a judging task, or it is in Label Studio and
            no client was given.
    """
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON_CHARS:
        raise ValidationFailed(
            f"Cannot withdraw {dataset} ({language}) item {key!r}:",
            [f"reason: say why, in 1-{MAX_REASON_CHARS} characters"],
        )
    with Session(db) as session:
        item = _item(session, dataset, language, key, private)
        if session.exec(
            select(JudgedResponse.id).where(JudgedResponse.source_item_id == id_of(item))
        ).first():
            raise SabhaError(
                f"{dataset} item {key!r} is a judging task, a sample of a job's answers.",
                "Judging projects are not edited; sample the job again if it must change.",
            )
    if item.labelstudio_task_id is not None:
        if client is None:
            raise SabhaError(
                f"{dataset} item {key!r} is in Label Studio, which Sabha cannot reach now.",
                "Start it (sabha labelstudio start) or set SABHA_LABEL_STUDIO_URL, then "
                "withdraw the item again.",
            )
        if client.private != private:
            raise SabhaError(
                f"{dataset} item {key!r} is on the {'private' if private else 'community'} "
                "Label Studio, not on the one given.",
                "Withdraw it with that server's client.",
            )
        client.delete_task(item.labelstudio_task_id)  # already gone: nothing to do there
    with session_scope(db) as session:
        made = session.exec(
            select(Annotation.labelstudio_annotation_id, Annotation.was_cancelled).where(
                Annotation.item_id == id_of(item)
            )
        ).all()
        delete_annotations(session, [labelstudio_id for labelstudio_id, _ in made])
        session.exec(
            delete(AnnotationAssignment).where(col(AnnotationAssignment.item_id) == id_of(item))
        )
        session.exec(delete(SourceItem).where(col(SourceItem.id) == id_of(item)))
        record = WithdrawnItem(
            project_id=item.project_id,
            key=item.key,
            split=item.split,
            data=item.data,
            reason=reason,
            annotations=sum(not cancelled for _, cancelled in made),
        )
        session.add(record)
        session.flush()
        session.expunge(record)
    return record
