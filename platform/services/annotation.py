"""Community annotation: projects, uploads, Label Studio provisioning, sync, overlap.

The CLI, the web pages and the webhook receiver call these functions; every
write is one transaction (``session_scope``), and Label Studio is reached only
through ``sabha.annotation.labelstudio``.
"""

from __future__ import annotations

import hmac
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from sabha.annotation.agreement import Agreement, agreement_of
from sabha.annotation.configs import LabelingOptions, labeling_config, result_values
from sabha.annotation.labelstudio import (
    LabelStudioClient,
    annotation_from_json,
)
from sabha.annotation.sync import (
    SyncReport,
    delete_annotations,
    reconcile_annotations,
    upsert_annotation,
)
from sabha.annotation.upload import read_source_file
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Annotation,
    AnnotationAssignment,
    AnnotationProject,
    AnnotationReview,
    AnnotationTaskType,
    JudgedResponse,
    LabelStudioAccount,
    ReviewVerdict,
    Role,
    SourceItem,
    User,
    id_of,
)
from sabha.platform.errors import NotFoundError, SabhaError, ValidationFailed
from sabha.platform.languages import check_language_tag

from .accounts import roles_of
from .private_items import PRIVATE_SPLIT, check_private_split, check_server_of

__all__ = [
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
    "webhook_secret_matches",
]

_IMPORT_BATCH = 200


class WebhookRefused(SabhaError):
    """A webhook call without the shared secret, or with a payload Sabha cannot read."""


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


def sync_project(db: Engine, client: LabelStudioClient, project_id: int) -> SyncReport:
    """Pull every annotation of a project from Label Studio (reconciliation).

    Idempotent: running it again changes nothing; it recovers what missed
    webhooks lost and removes what was deleted in Label Studio meanwhile.
    """
    with Session(db) as session:
        project = session.get(AnnotationProject, project_id)
        if project is None:
            raise NotFoundError(f"Annotation project {project_id} does not exist.")
    if project.labelstudio_project_id is None:
        return SyncReport()
    seen = list(client.project_annotations(project.labelstudio_project_id))
    with session_scope(db) as session:
        return reconcile_annotations(session, project, seen)


def webhook_secret_matches(expected: str | None, given: str | None) -> bool:
    """Whether a webhook call carries the shared secret (constant-time comparison)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def apply_webhook(db: Engine, payload: Any) -> SyncReport:
    """Apply one Label Studio webhook call (already authenticated) to Sabha's copy.

    Raises:
        WebhookRefused: the payload is not a Label Studio annotation event.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("action"), str):
        raise WebhookRefused("The webhook payload has no action.", "Send Label Studio's JSON.")
    action = payload["action"]
    report = SyncReport()
    try:
        if action in {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}:
            annotations = [annotation_from_json(payload["annotation"])]
        elif action == "ANNOTATIONS_CREATED":
            annotations = [annotation_from_json(a) for a in payload["annotation"]]
        elif action == "ANNOTATIONS_DELETED":
            deleted = [int(a["id"]) for a in payload["annotations"]]
            with session_scope(db) as session:
                report.judged = _judges_answers(
                    session,
                    select(Annotation.item_id).where(
                        col(Annotation.labelstudio_annotation_id).in_(deleted)
                    ),
                )
                report.deleted = delete_annotations(session, deleted)
            return report
        else:
            return report  # other events do not concern Sabha
    except (KeyError, TypeError, ValueError) as exc:
        raise WebhookRefused(f"The webhook payload of {action} is malformed ({exc}).") from exc
    for attempt in range(2):
        try:
            with session_scope(db) as session:
                report = SyncReport()
                for annotation in annotations:
                    report.add(upsert_annotation(session, annotation))
                report.judged = _judges_answers(
                    session,
                    select(SourceItem.id).where(
                        col(SourceItem.labelstudio_task_id).in_([a.task_id for a in annotations])
                    ),
                )
            return report
        except IntegrityError:
            if attempt:  # a concurrent sync inserted the same annotation: upsert again
                raise
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
    """Annotations (not skipped) per Label Studio user id."""
    with Session(db) as session:
        rows = session.exec(
            select(Annotation.labelstudio_user_id, func.count())
            .join(SourceItem, col(SourceItem.id) == col(Annotation.item_id))
            .where(SourceItem.project_id == project_id, col(Annotation.was_cancelled).is_(False))
            .group_by(col(Annotation.labelstudio_user_id))
        ).all()
    return dict(Counter({int(u): int(c) for u, c in rows}))


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


def review_annotation(
    db: Engine, labelstudio_annotation_id: int, reviewer: User, verdict: str, comment: str = ""
) -> AnnotationReview:
    """Record (or change) a reviewer's verdict on one annotation.

    Raises:
        ValidationFailed: an unknown verdict, or a rejection without a comment.
        SabhaError: the reviewer lacks the reviewer role or made the annotation.
        NotFoundError: Sabha has no such annotation (sync first).
    """
    try:
        decided = ReviewVerdict(verdict)
    except ValueError:
        raise ValidationFailed(
            f"Cannot record the review of annotation {labelstudio_annotation_id}:",
            [f"verdict {verdict!r} is unknown; use accepted or rejected"],
        ) from None
    if decided is ReviewVerdict.REJECTED and not comment.strip():
        raise ValidationFailed(
            f"Cannot record the review of annotation {labelstudio_annotation_id}:",
            ["a rejection needs a comment that tells the annotator what to fix"],
        )
    with session_scope(db) as session:
        if Role.REVIEWER not in roles_of(session, reviewer):
            raise SabhaError(
                f"{reviewer.username} is not a reviewer.",
                "An admin grants the role: sabha users grant USER reviewer.",
            )
        annotation = session.exec(
            select(Annotation).where(
                Annotation.labelstudio_annotation_id == labelstudio_annotation_id
            )
        ).first()
        if annotation is None:
            raise NotFoundError(
                f"Sabha has no annotation {labelstudio_annotation_id}.",
                "Run `sabha annotations sync` first.",
            )
        own = session.exec(
            select(LabelStudioAccount).where(
                LabelStudioAccount.user_id == id_of(reviewer),
                LabelStudioAccount.labelstudio_user_id == annotation.labelstudio_user_id,
            )
        ).first()
        if own is not None:
            raise SabhaError(
                f"{reviewer.username} made annotation {labelstudio_annotation_id} and cannot "
                "review it.",
                "Another reviewer must review it.",
            )
        review = session.exec(
            select(AnnotationReview).where(
                AnnotationReview.annotation_id == id_of(annotation),
                AnnotationReview.reviewer_id == id_of(reviewer),
            )
        ).first() or AnnotationReview(
            annotation_id=id_of(annotation),
            reviewer_id=id_of(reviewer),
            verdict=decided,
            comment="",
        )
        review.verdict = decided
        review.comment = comment
        session.add(review)
        session.flush()
        return review


# -- agreement ---------------------------------------------------------------------------


def dataset_agreement(db: Engine, dataset_name: str) -> dict[str, dict[str, Agreement]]:
    """Agreement per language and overall (key ``"overall"``) for a dataset's projects.

    Skipped (cancelled) annotations do not count. Overall pools the items of
    every language whose projects share a task type.
    """
    with Session(db) as session:
        projects = session.exec(
            select(AnnotationProject)
            .where(AnnotationProject.dataset_name == dataset_name)
            .order_by(col(AnnotationProject.language))
        ).all()
        if not projects:
            raise NotFoundError(f"Dataset {dataset_name!r} has no annotation projects.")
        rows = session.exec(
            select(
                AnnotationProject.language,
                SourceItem.key,
                Annotation.labelstudio_user_id,
                Annotation.result,
            )
            .join(SourceItem, col(SourceItem.project_id) == col(AnnotationProject.id))
            .join(Annotation, col(Annotation.item_id) == col(SourceItem.id))
            .where(
                AnnotationProject.dataset_name == dataset_name,
                col(Annotation.was_cancelled).is_(False),
            )
        ).all()
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
