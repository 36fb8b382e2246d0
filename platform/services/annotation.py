"""Community annotation: projects, uploads, Label Studio provisioning, sync, overlap.

The CLI, the web pages and the webhook receiver call these functions; every
write is one transaction (``session_scope``), and Label Studio is reached only
through ``sabha.annotation.labelstudio``.
"""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.annotation.agreement import Agreement, agreement_of
from sabha.annotation.configs import LabelingOptions, labeling_config, result_values
from sabha.annotation.labelstudio import (
    LabelStudioClient,
    LabelStudioError,
    LabelStudioNotFound,
)
from sabha.annotation.sync import SyncReport, reconcile_item
from sabha.annotation.upload import read_source_file
from sabha.annotation.votes import votes_of
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Annotation,
    AnnotationAssignment,
    AnnotationProject,
    AnnotationTaskType,
    JudgedResponse,
    LabelStudioAccount,
    SourceItem,
    id_of,
)
from sabha.platform.errors import NotFoundError, SabhaError, ValidationFailed
from sabha.platform.languages import check_language_tag
from sabha.platform.wire import MAX_DB_ID

from .annotation_review import review_annotation  # its home before reviews had their own
from .private_items import PRIVATE_SPLIT, check_private_split, check_server_of

__all__ = [
    "WebhookNotice",
    "WebhookRefused",
    "apply_webhook",
    "annotator_counts",
    "create_annotation_project",
    "dataset_agreement",
    "get_annotation_project",
    "items_needing_annotations",
    "link_labelstudio_account",
    "next_items_for",
    "provision_project",
    "review_annotation",
    "sync_project",
    "upload_source_items",
    "webhook_notice",
    "webhook_secret_matches",
]

_IMPORT_BATCH = 200
MAX_NOTICE_IDS = 1000
"""The most annotations one webhook notice may name (Label Studio names one per
annotation; a bulk deletion names each deleted one)."""


class WebhookRefused(SabhaError):
    """A webhook payload Sabha cannot read as a notice (HTTP 422)."""

    http_status = 422


def create_annotation_project(
    db: Engine,
    dataset_name: str,
    language: str,
    task_type: str,
    *,
    annotations_per_item: int = 2,
    title: str | None = None,
    options: LabelingOptions | None = None,
    private: bool = False,
) -> AnnotationProject:
    """Register a dataset's annotation project in one language.

    The labeling config is built now, so a bad option (a ``label`` project
    without hazards) is refused before anything is stored. A ``private``
    project holds the dataset's private held-out items in that language, on
    the private Label Studio (``services/private_items.py``).

    Raises:
        ValidationFailed: an unknown task type, a bad k or bad options.
        SabhaError: the dataset already has a project in that language.
    """
    problems = []
    try:
        kind = AnnotationTaskType(task_type)
    except ValueError:
        problems.append(
            f"task type {task_type!r} is unknown; use one of "
            f"{', '.join(t.value for t in AnnotationTaskType)}"
        )
    if not 1 <= annotations_per_item <= 20:
        problems.append("annotations per item must be between 1 and 20")
    tag = language
    try:
        check_language_tag(language)
    except ValueError as exc:
        problems.append(f"language: {exc}")
    options = options or LabelingOptions()
    if not problems:
        try:
            labeling_config(kind, options)
        except ValueError as exc:
            problems.append(f"labeling options: {exc}")
    if problems:
        raise ValidationFailed(
            f"Cannot create the annotation project of {dataset_name!r}:", problems
        )
    with session_scope(db) as session:
        if session.exec(
            select(AnnotationProject).where(
                AnnotationProject.dataset_name == dataset_name,
                AnnotationProject.language == tag,
                AnnotationProject.private == private,
            )
        ).first():
            which = "a private" if private else "an"
            raise SabhaError(
                f"Dataset {dataset_name!r} already has {which} annotation project in {tag}.",
                "Upload more items to that project instead.",
            )
        project = AnnotationProject(
            dataset_name=dataset_name,
            language=tag,
            task_type=kind,
            title=title or f"{dataset_name} ({tag}{', private' if private else ''})",
            annotations_per_item=annotations_per_item,
            options=options.to_json(),
            private=private,
        )
        session.add(project)
        session.flush()
        return project


def get_annotation_project(
    session: Session, dataset_name: str, language: str, private: bool = False
) -> AnnotationProject:
    """The project of a dataset in a language (its private one when ``private``).

    Raises:
        NotFoundError: there is none.
    """
    tag = language
    project = session.exec(
        select(AnnotationProject).where(
            AnnotationProject.dataset_name == dataset_name,
            AnnotationProject.language == tag,
            AnnotationProject.private == private,
        )
    ).first()
    if project is None:
        kind = "private annotation project" if private else "annotation project"
        raise NotFoundError(
            f"Dataset {dataset_name!r} has no {kind} in {tag}.",
            "Create it first (sabha annotations create" + (" --private)." if private else ")."),
        )
    return project


def upload_source_items(
    db: Engine, project_id: int, path: Path, *, max_field_chars: int = 20_000
) -> int:
    """Add a file's rows to a project: all of them, or none when any row is bad.

    Raises:
        ValidationFailed: a bad row (named by line and field), or an id the
            project already has.
    """
    with Session(db) as session:
        project = session.get(AnnotationProject, project_id)
        if project is None:
            raise NotFoundError(f"Annotation project {project_id} does not exist.")
    rows = read_source_file(
        path,
        AnnotationTaskType(project.task_type),
        project.language,
        max_field_chars=max_field_chars,
        default_split=PRIVATE_SPLIT if project.private else "test",
    )
    check_private_split(project, path, rows)
    with session_scope(db) as session:
        existing = set(
            session.exec(select(SourceItem.key).where(SourceItem.project_id == project_id)).all()
        )
        clashes = [
            f"line {r.line}: field 'id' {r.key!r} is already in the project"
            for r in rows
            if r.key in existing
        ]
        if clashes:
            raise ValidationFailed(
                f"{path}: {len(clashes)} problem(s); nothing was imported.",
                clashes,
                "Give new items new ids, or leave out the ones uploaded before.",
            )
        session.add_all(
            SourceItem(project_id=project_id, key=r.key, split=r.split, data=r.data) for r in rows
        )
    return len(rows)


def provision_project(
    db: Engine,
    client: LabelStudioClient,
    project_id: int,
    *,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
) -> int:
    """Create the project in Label Studio (once) and import items not yet there.

    Items are imported in batches, each batch's task ids stored right away,
    so an interrupted run resumes where it stopped.

    Returns:
        The Label Studio project id.
    """
    with Session(db) as session:
        project = session.get(AnnotationProject, project_id)
        if project is None:
            raise NotFoundError(f"Annotation project {project_id} does not exist.")
    check_server_of(project, client)
    if project.labelstudio_project_id is None:
        config = labeling_config(
            AnnotationTaskType(project.task_type),
            LabelingOptions.from_json(project.options),
            language=project.language,
        )
        ls_id = client.create_project(
            project.title,
            config,
            description=f"Sabha dataset {project.dataset_name}, language {project.language}",
        )
        with session_scope(db) as session:
            stored = session.get(AnnotationProject, project_id)
            assert stored is not None
            stored.labelstudio_project_id = ls_id
            session.add(stored)
        if webhook_url and webhook_secret:
            client.add_webhook(ls_id, webhook_url, webhook_secret)
        project.labelstudio_project_id = ls_id
    ls_project = project.labelstudio_project_id
    while True:
        with Session(db) as session:
            batch = session.exec(
                select(SourceItem)
                .where(
                    SourceItem.project_id == project_id,
                    col(SourceItem.labelstudio_task_id).is_(None),
                )
                .order_by(col(SourceItem.id))
                .limit(_IMPORT_BATCH)
            ).all()
        if not batch:
            return ls_project
        task_ids = client.import_tasks(
            ls_project, [{"data": {**item.data, "sabha_key": item.key}} for item in batch]
        )
        with session_scope(db) as session:
            for item, task_id in zip(batch, task_ids, strict=True):
                item.labelstudio_task_id = task_id
                session.add(item)


def _refresh_item(
    db: Engine, client: LabelStudioClient, item_id: int, *, max_text_chars: int
) -> SyncReport:
    """Read one item's task from Label Studio and make Sabha's copy exactly that, checked.

    The item's row is locked (PostgreSQL ``FOR UPDATE``; SQLite's write lock)
    before Label Studio is asked, so two refreshes of one task cannot cross:
    the later one reads the later truth and writes last.
    """
    with session_scope(db) as session:
        item = session.exec(
            select(SourceItem).where(SourceItem.id == item_id).with_for_update()
        ).first()
        if item is None or item.labelstudio_task_id is None:
            return SyncReport()
        project = session.get(AnnotationProject, item.project_id)
        assert project is not None  # source items reference projects by foreign key
        try:
            held = client.task_annotations(item.labelstudio_task_id)
        except LabelStudioNotFound:
            if project.labelstudio_project_id is None or not client.has_project(
                project.labelstudio_project_id
            ):
                raise LabelStudioError(
                    f"Label Studio at {client.url} has no project "
                    f"{project.labelstudio_project_id} ({project.title}); nothing was changed.",
                    "Point SABHA_LABEL_STUDIO_URL at the server the project was provisioned on.",
                ) from None
            held = []  # the task was deleted: so were its annotations
        report = reconcile_item(session, project, item, held, max_text_chars=max_text_chars)
        if report.changed():
            report.judged = _judges_answers(
                session, select(SourceItem.id).where(SourceItem.id == item_id)
            )
        return report


def sync_project(
    db: Engine, client: LabelStudioClient, project_id: int, *, max_text_chars: int = 20_000
) -> SyncReport:
    """Read every item of a project back from Label Studio (reconciliation).

    Idempotent: running it again changes nothing; it recovers what missed
    webhooks lost, removes what was deleted in Label Studio meanwhile, and
    refuses (and reports) what Label Studio holds that no annotator could have
    made in the labeling interface.
    """
    with Session(db) as session:
        project = session.get(AnnotationProject, project_id)
        if project is None:
            raise NotFoundError(f"Annotation project {project_id} does not exist.")
        items = session.exec(
            select(SourceItem.id)
            .where(
                SourceItem.project_id == project_id,
                col(SourceItem.labelstudio_task_id).is_not(None),
            )
            .order_by(col(SourceItem.id))
        ).all()
    report = SyncReport()
    if project.labelstudio_project_id is None:
        return report
    if not client.has_project(project.labelstudio_project_id):
        raise LabelStudioError(
            f"Label Studio at {client.url} has no project {project.labelstudio_project_id} "
            f"({project.title}); nothing was changed.",
            "Point SABHA_LABEL_STUDIO_URL at the server the project was provisioned on.",
        )
    for item_id in items:
        report.merge(_refresh_item(db, client, int(item_id or 0), max_text_chars=max_text_chars))
    return report


def webhook_secret_matches(expected: str | None, given: str | None) -> bool:
    """Whether a webhook call carries the shared secret (constant-time comparison)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def _notice_id(value: Any, where: str) -> int:
    """An id from a webhook notice: a whole number Sabha's database can hold."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DB_ID:
        raise WebhookRefused(
            f"The webhook notice's {where} is {str(value)[:40]!r}, not an id from 1 to "
            f"{MAX_DB_ID}.",
            "Send Label Studio's own webhook JSON.",
        )
    return value


@dataclass(frozen=True)
class WebhookNotice:
    """What a webhook call names: an action and ids; nothing it says about content."""

    action: str
    annotation_ids: tuple[int, ...] = ()
    task_ids: tuple[int, ...] = ()


def webhook_notice(payload: Any) -> WebhookNotice:
    """Read the action and the ids a webhook payload names (nothing else is read from it).

    Raises:
        WebhookRefused: no action, no or too many annotations, or an id that is
            not a whole number from 1 to 2**31-1 (the field is named).
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("action"), str):
        raise WebhookRefused("The webhook payload has no action.", "Send Label Studio's JSON.")
    action = str(payload["action"])[:100]
    named: Any
    if action in {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}:
        named, where = [payload.get("annotation")], "annotation"
    elif action == "ANNOTATIONS_CREATED":
        named, where = payload.get("annotation"), "annotation"
    elif action == "ANNOTATIONS_DELETED":
        named, where = payload.get("annotations"), "annotations"
    else:
        return WebhookNotice(action)  # other events do not concern Sabha
    if not isinstance(named, list) or not named or len(named) > MAX_NOTICE_IDS:
        raise WebhookRefused(
            f"The webhook notice {action} names no annotations, or more than "
            f"{MAX_NOTICE_IDS}, in '{where}'.",
            "Send Label Studio's own webhook JSON.",
        )
    annotations, tasks = [], []
    single = action in {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}
    for number, entry in enumerate(named):
        field = where if single else f"{where}[{number}]"
        if not isinstance(entry, dict):
            raise WebhookRefused(
                f"The webhook notice's {field} is not an object.",
                "Send Label Studio's own webhook JSON.",
            )
        annotations.append(_notice_id(entry.get("id"), f"{field}.id"))
        if entry.get("task") is not None:
            tasks.append(_notice_id(entry["task"], f"{field}.task"))
    if isinstance(payload.get("task"), dict) and payload["task"].get("id") is not None:
        tasks.append(_notice_id(payload["task"]["id"], "task.id"))
    return WebhookNotice(action, tuple(annotations), tuple(tasks))


def apply_webhook(
    db: Engine,
    client_for: Callable[[bool], LabelStudioClient],
    notice: WebhookNotice,
    *,
    max_text_chars: int = 20_000,
) -> SyncReport:
    """Check what a webhook notice names against Label Studio, and record that.

    ``client_for(private)`` is the Label Studio client of the community
    (False) or the private (True) server: each item is read back from the
    server its project lives on, whichever server sent the notice.

    Only the notice's ids are used, and only to decide which tasks to read
    back: every item whose task it names, or which holds an annotation it
    names, is read from Label Studio with Sabha's own token and reconciled
    (``reconcile_item``). What a payload says an annotation contains is never
    recorded, so a forged, replayed or reordered notice changes nothing Label
    Studio does not hold now.

    Raises:
        LabelStudioError: Label Studio could not be read (nothing changed).
    """
    if not notice.annotation_ids:
        return SyncReport()
    task_ids, annotation_ids = list(notice.task_ids), list(notice.annotation_ids)
    with Session(db) as session:
        by_task = dict(
            session.exec(
                select(SourceItem.labelstudio_task_id, SourceItem.id).where(
                    col(SourceItem.labelstudio_task_id).in_(task_ids)
                )
            ).all()
        )
        by_annotation = session.exec(
            select(Annotation.item_id).where(
                col(Annotation.labelstudio_annotation_id).in_(annotation_ids)
            )
        ).all()
        named = sorted({int(i) for i in [*by_task.values(), *by_annotation] if i is not None})
        private = dict(
            session.exec(
                select(SourceItem.id, AnnotationProject.private)
                .join(AnnotationProject, col(AnnotationProject.id) == SourceItem.project_id)
                .where(col(SourceItem.id).in_(named))
            ).all()
        )
    report = SyncReport(unknown_tasks=len(set(task_ids) - set(by_task)))
    for item_id in named:
        client = client_for(bool(private.get(item_id, False)))
        report.merge(_refresh_item(db, client, item_id, max_text_chars=max_text_chars))
    return report


def _judges_answers(session: Session, source_items: Any) -> bool:
    """Whether any of these source items (a subquery of ids) is a judging task."""
    found = session.exec(
        select(JudgedResponse.id).where(col(JudgedResponse.source_item_id).in_(source_items))
    ).first()
    return found is not None


# -- overlap: k independent annotations per item ------------------------------------------


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


# -- agreement ---------------------------------------------------------------------------


def dataset_agreement(db: Engine, dataset_name: str) -> dict[str, dict[str, Agreement]]:
    """Agreement per language and overall (key ``"overall"``) for a dataset's projects.

    One vote per person and item (``votes_of``: their latest annotation;
    skipped ones never count). Overall pools the items of every language whose
    projects share a task type.
    """
    with Session(db) as session:
        projects = session.exec(
            select(AnnotationProject)
            .where(AnnotationProject.dataset_name == dataset_name)
            .order_by(col(AnnotationProject.language))
        ).all()
        if not projects:
            raise NotFoundError(f"Dataset {dataset_name!r} has no annotation projects.")
        keys = {
            id_of(item): (language, item.key)
            for language, item in session.exec(
                select(AnnotationProject.language, SourceItem)
                .join(SourceItem, col(SourceItem.project_id) == col(AnnotationProject.id))
                .where(AnnotationProject.dataset_name == dataset_name)
            ).all()
        }
        annotations = session.exec(
            select(Annotation).where(col(Annotation.item_id).in_(list(keys)))
        ).all()
        rows = [(*keys[a.item_id], a.labelstudio_user_id, a.result) for a in votes_of(annotations)]
    kinds = {AnnotationTaskType(p.task_type) for p in projects}
    if len(kinds) != 1:
        raise SabhaError(
            f"Dataset {dataset_name!r} mixes task types {sorted(kinds)}; agreement compares "
            "like with like.",
            "Give each task type its own dataset.",
        )
    kind = kinds.pop()
    by_language: dict[str, dict[Any, dict[Any, dict[str, Any]]]] = {
        p.language: {} for p in projects
    }
    overall: dict[Any, dict[Any, dict[str, Any]]] = {}
    for language, key, user, result in rows:
        fields = result_values(result)
        by_language[language].setdefault(key, {})[user] = fields
        overall.setdefault((language, key), {})[user] = fields
    report = {language: agreement_of(kind, values) for language, values in by_language.items()}
    report["overall"] = agreement_of(kind, overall)
    return report
