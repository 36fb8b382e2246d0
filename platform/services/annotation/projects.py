"""Annotation projects: registered per dataset and language, filled from files, provisioned.

A project is made in Sabha first (its labeling config checked before
anything is stored), then filled from a source file (all rows or none), then
created in Label Studio and its items imported as tasks.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.annotation.configs import LabelingOptions, labeling_config
from sabha.annotation.labelstudio import LabelStudioClient
from sabha.annotation.upload import read_source_file
from sabha.platform.db import session_scope
from sabha.platform.domain import AnnotationProject, AnnotationTaskType, SourceItem
from sabha.platform.errors import NotFoundError, SabhaError, ValidationFailed
from sabha.platform.languages import check_language_tag

from ..private_items import PRIVATE_SPLIT, check_private_split, check_server_of

__all__ = [
    "create_annotation_project",
    "get_annotation_project",
    "provision_project",
    "upload_source_items",
]

_IMPORT_BATCH = 200


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
        project.task_type,
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
            project.task_type,
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
