"""Agreement of the annotators' votes on a dataset, per language and overall."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.annotation.agreement import Agreement, agreement_of
from sabha.annotation.configs import result_values
from sabha.annotation.votes import votes_of
from sabha.platform.domain import (
    Annotation,
    AnnotationProject,
    SourceItem,
    id_of,
)
from sabha.platform.errors import NotFoundError, SabhaError

__all__ = ["dataset_agreement"]


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
    kinds = {p.task_type for p in projects}
    if len(kinds) != 1:
        raise SabhaError(
            f"Dataset {dataset_name!r} mixes task types {', '.join(sorted(kinds))}; "
            "agreement compares like with like.",
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
