"""Reviews by people: what a reviewer has to review, and recording their verdict.

The web page (``/review``), the JSON API (``/api/v1/reviews``) and the
command line (``sabha annotations review``) all call these functions.

A reviewer sees each person's vote (their latest annotation of an item,
``sabha.annotation.votes``) in the datasets that are released as data, never
their own. A verdict names the version of the annotation the reviewer saw:
when the annotation changed since, the verdict is refused (look again), and a
later edit voids every review of the old version.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.annotation.configs import result_values, task_fields
from sabha.annotation.gold import RELEASABLE_TASKS
from sabha.annotation.votes import (
    MIN_VERSION_PREFIX,
    annotation_version,
    version_matches,
    votes_of,
)
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Annotation,
    AnnotationProject,
    AnnotationReview,
    LabelStudioAccount,
    ReviewVerdict,
    Role,
    SourceItem,
    User,
    id_of,
    utcnow,
)
from sabha.platform.errors import NotFoundError, PermissionDenied, SabhaError, ValidationFailed

from ..users import roles_of

__all__ = [
    "MAX_COMMENT_CHARS",
    "AnnotationToReview",
    "ReviewOutdated",
    "ReviewPublic",
    "ReviewQueue",
    "current_reviews",
    "linked_labelstudio_users",
    "review_annotation",
    "review_queue",
    "votes_and_accepted",
]

MAX_COMMENT_CHARS = 2000
PER_PAGE = 50


class ReviewOutdated(SabhaError):
    """The annotation changed since the reviewer saw it (HTTP 409)."""

    http_status = 409
    problem_type = "annotation-changed"


class _ReviewInvalid(ValidationFailed):
    """A review with bad fields; ``field_problems`` name each for the JSON API."""

    def __init__(self, message: str, problems: list[tuple[str, str, str]]) -> None:
        super().__init__(message, [f"{name}: {text}" for name, text, _fix in problems])
        self.field_problems = problems


class AnnotationToReview(BaseModel):
    """One person's vote on one item, as a reviewer sees it (never who made it)."""

    annotation_id: int = Field(description="Label Studio's id of the annotation")
    dataset: str
    language: str
    task_type: str
    item: str = Field(description="The item's key in its project")
    shown: dict[str, Any] = Field(description="What the annotator saw (the item's fields)")
    answer: dict[str, Any] = Field(description="What the annotator answered, by control")
    version: str = Field(description="The annotation's version: send it with your verdict")
    updated_at: datetime
    reviews: int = Field(description="Reviews of this version, by anyone")
    my_verdict: str | None = Field(default=None, description="Your verdict on this version")
    my_comment: str = ""
    my_review_outdated: bool = Field(
        default=False, description="You reviewed an earlier version; it no longer counts"
    )


class ReviewQueue(BaseModel):
    """A page of annotations to review, fewest reviews first."""

    annotations: list[AnnotationToReview]
    total: int = Field(description="Annotations matching the filters, on every page")
    page: int
    per_page: int


class ReviewPublic(BaseModel):
    """A recorded verdict."""

    annotation_id: int
    verdict: str
    comment: str
    version: str
    reviewer: str
    created_at: datetime


def _require_reviewer(session: Session, reviewer: User) -> None:
    if Role.REVIEWER not in roles_of(session, reviewer):
        raise PermissionDenied(
            f"{reviewer.username} is not a reviewer.",
            "An admin grants the role: sabha users grant USER reviewer.",
        )


def _own_labelstudio_user(session: Session, user: User) -> int | None:
    return session.exec(
        select(LabelStudioAccount.labelstudio_user_id).where(
            LabelStudioAccount.user_id == id_of(user)
        )
    ).first()


def review_queue(
    session: Session,
    reviewer: User,
    *,
    dataset: str | None = None,
    language: str | None = None,
    include_reviewed: bool = False,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> ReviewQueue:
    """The votes a reviewer can review, those with fewest reviews first.

    Without ``include_reviewed``, only votes the reviewer has not reviewed
    in their current version (an edit brings an annotation back).

    Raises:
        PermissionDenied: the user is not a reviewer.
    """
    _require_reviewer(session, reviewer)
    query = select(AnnotationProject).where(
        col(AnnotationProject.task_type).in_([t.value for t in RELEASABLE_TASKS])
    )
    if dataset:
        query = query.where(AnnotationProject.dataset_name == dataset)
    if language:
        query = query.where(AnnotationProject.language == language)
    projects = {id_of(p): p for p in session.exec(query).all()}
    items = {
        id_of(i): i
        for i in session.exec(
            select(SourceItem).where(col(SourceItem.project_id).in_(list(projects)))
        ).all()
    }
    own = _own_labelstudio_user(session, reviewer)
    votes = [
        a
        for a in votes_of(
            session.exec(select(Annotation).where(col(Annotation.item_id).in_(list(items)))).all()
        )
        if a.labelstudio_user_id != own
    ]
    reviews: dict[int, list[AnnotationReview]] = {}
    for review in session.exec(
        select(AnnotationReview).where(
            col(AnnotationReview.annotation_id).in_([id_of(a) for a in votes])
        )
    ).all():
        reviews.setdefault(review.annotation_id, []).append(review)
    entries = []
    for vote in votes:
        version = annotation_version(vote.result)
        held = reviews.get(id_of(vote), [])
        mine = next((r for r in held if r.reviewer_id == id_of(reviewer)), None)
        current = mine is not None and mine.annotation_version == version
        if current and not include_reviewed:
            continue
        item = items[vote.item_id]
        project = projects[item.project_id]
        kind = project.task_type
        entries.append(
            AnnotationToReview(
                annotation_id=vote.labelstudio_annotation_id,
                dataset=project.dataset_name,
                language=project.language,
                task_type=kind.value,
                item=item.key,
                shown={name: item.data.get(name) for name in task_fields(kind)},
                answer=result_values(vote.result),
                version=version,
                updated_at=vote.updated_at,
                reviews=sum(r.annotation_version == version for r in held),
                my_verdict=mine.verdict if current and mine else None,
                my_comment=mine.comment if current and mine else "",
                my_review_outdated=mine is not None and not current,
            )
        )
    entries.sort(key=lambda e: (e.reviews, e.dataset, e.language, e.item, e.annotation_id))
    start = (page - 1) * per_page
    return ReviewQueue(
        annotations=entries[start : start + per_page],
        total=len(entries),
        page=page,
        per_page=per_page,
    )


def _check_review(
    labelstudio_annotation_id: int, verdict: str, comment: str, version: str
) -> ReviewVerdict:
    where = f"Cannot record the review of annotation {labelstudio_annotation_id}:"
    problems: list[tuple[str, str, str]] = []
    decided = None
    try:
        decided = ReviewVerdict(verdict)
    except ValueError:
        problems.append(("verdict", f"{verdict!r} is unknown", "Use accepted or rejected."))
    if decided is ReviewVerdict.REJECTED and not comment.strip():
        problems.append(
            (
                "comment",
                "a rejection needs a comment that tells the annotator what to fix",
                "Say what is wrong with the annotation.",
            )
        )
    if len(comment) > MAX_COMMENT_CHARS:
        problems.append(
            (
                "comment",
                f"it has {len(comment)} characters, more than {MAX_COMMENT_CHARS}",
                f"Shorten it to at most {MAX_COMMENT_CHARS} characters.",
            )
        )
    cleaned = version.strip().lower()
    if (
        len(cleaned) < MIN_VERSION_PREFIX
        or len(cleaned) > 64
        or any(c not in "0123456789abcdef" for c in cleaned)
    ):
        problems.append(
            (
                "version",
                "it must be the version of the annotation you reviewed: 8 to 64 hex digits",
                "Send the version the review list showed with the annotation.",
            )
        )
    if problems or decided is None:
        raise _ReviewInvalid(where, problems)
    return decided


def review_annotation(
    db: Engine,
    labelstudio_annotation_id: int,
    reviewer: User,
    verdict: str,
    comment: str = "",
    *,
    version: str,
) -> ReviewPublic:
    """Record (or change) a reviewer's verdict on the version of an annotation they saw.

    Args:
        db: Sabha's database.
        labelstudio_annotation_id: Label Studio's id of the annotation.
        reviewer: Who reviews.
        verdict: ``accepted`` or ``rejected``.
        comment: Why (a rejection needs one).
        version: The annotation's version the reviewer saw (``annotation_version``;
            at least its first 8 characters).

    Raises:
        ValidationFailed: an unknown verdict, a rejection without a comment, a
            comment too long, or no version.
        PermissionDenied: the reviewer lacks the reviewer role or made the annotation.
        NotFoundError: Sabha has no such annotation (sync first).
        ReviewOutdated: the annotation changed since that version, or the
            same person annotated the item again later (review that one).
    """
    decided = _check_review(labelstudio_annotation_id, verdict, comment, version)
    with session_scope(db) as session:
        _require_reviewer(session, reviewer)
        annotation = session.exec(
            select(Annotation).where(
                Annotation.labelstudio_annotation_id == labelstudio_annotation_id
            )
        ).first()
        if annotation is None or annotation.was_cancelled:
            raise NotFoundError(
                f"Sabha has no annotation {labelstudio_annotation_id}.",
                "Pick one from the review list (sabha annotations review list).",
            )
        if annotation.labelstudio_user_id == _own_labelstudio_user(session, reviewer):
            raise PermissionDenied(
                f"{reviewer.username} made annotation {labelstudio_annotation_id} and cannot "
                "review it.",
                "Another reviewer must review it.",
            )
        _require_vote(session, annotation)
        current = annotation_version(annotation.result)
        if not version_matches(version, current):
            raise ReviewOutdated(
                f"Annotation {labelstudio_annotation_id} changed since you saw it (you saw "
                f"version {version.strip()[:12]}, it is now {current[:12]}); nothing was recorded.",
                "Look at the annotation again and review what it says now.",
            )
        review = session.exec(
            select(AnnotationReview).where(
                AnnotationReview.annotation_id == id_of(annotation),
                AnnotationReview.reviewer_id == id_of(reviewer),
            )
        ).first() or AnnotationReview(
            annotation_id=id_of(annotation), reviewer_id=id_of(reviewer), verdict=decided
        )
        review.verdict = decided
        review.comment = comment.strip()
        review.annotation_version = current
        review.created_at = utcnow()
        session.add(review)
        session.flush()
        return ReviewPublic(
            annotation_id=labelstudio_annotation_id,
            verdict=decided.value,
            comment=review.comment,
            version=current,
            reviewer=reviewer.username,
            created_at=review.created_at,
        )


def _require_vote(session: Session, annotation: Annotation) -> None:
    """Refuse a review of an annotation its annotator has replaced with a later one."""
    siblings: Sequence[Annotation] = session.exec(
        select(Annotation).where(
            Annotation.item_id == annotation.item_id,
            Annotation.labelstudio_user_id == annotation.labelstudio_user_id,
        )
    ).all()
    (vote,) = votes_of(siblings)
    if vote.labelstudio_annotation_id != annotation.labelstudio_annotation_id:
        raise ReviewOutdated(
            f"Annotation {annotation.labelstudio_annotation_id} is replaced by the same "
            f"annotator's later annotation {vote.labelstudio_annotation_id} of this item; "
            "only a person's latest annotation counts.",
            f"Review annotation {vote.labelstudio_annotation_id} instead.",
        )


def linked_labelstudio_users(session: Session, user_id: int) -> list[int]:
    """The Label Studio user ids a Sabha user annotates as (community and private server)."""
    return list(
        session.exec(
            select(LabelStudioAccount.labelstudio_user_id).where(
                LabelStudioAccount.user_id == user_id
            )
        ).all()
    )


def votes_and_accepted(session: Session, user_id: int) -> tuple[list[Annotation], set[int]]:
    """A person's votes and the ids of those a reviewer accepted at their current version.

    Votes are their latest annotation of each item (``votes_of``), made
    through any Label Studio account linked to them (the community and the
    private server). A review of an older version of a vote does not count.
    """
    linked = linked_labelstudio_users(session, user_id)
    if not linked:
        return [], set()
    votes = votes_of(
        session.exec(
            select(Annotation).where(col(Annotation.labelstudio_user_id).in_(linked))
        ).all()
    )
    accepted = {
        annotation_id
        for annotation_id, reviews in current_reviews(session, votes).items()
        if any(review.verdict == ReviewVerdict.ACCEPTED for review in reviews)
    }
    return votes, accepted


def current_reviews(
    session: Session, votes: Sequence[Annotation]
) -> dict[int, list[AnnotationReview]]:
    """The reviews of each vote that count: those of the version it has now.

    A review names the version the reviewer saw; once the annotator edits
    their vote, reviews of the older version no longer count (look again).
    """
    versions = {id_of(vote): annotation_version(vote.result) for vote in votes}
    counted: dict[int, list[AnnotationReview]] = {}
    for review in session.exec(
        select(AnnotationReview).where(col(AnnotationReview.annotation_id).in_(list(versions)))
    ).all():
        if review.annotation_version == versions[review.annotation_id]:
            counted.setdefault(review.annotation_id, []).append(review)
    return counted
