"""Reviews of annotations and what blocks a dataset's release.

Reviewers (a token with the ``review`` scope) list the annotations they can
review and accept or reject one, naming the version they saw; maintainers (the
``maintain`` scope) read what still blocks a dataset's release.
"""

from __future__ import annotations

from flask import Response
from pydantic import BaseModel, ConfigDict, Field

from sabha.annotation.gates import ReleaseGates
from sabha.platform.db import get_engine, get_session
from sabha.platform.domain import TokenScope, User
from sabha.platform.errors import NotFoundError
from sabha.platform.services.annotation import (
    MAX_COMMENT_CHARS,
    DatasetBlockersPublic,
    ReviewPublic,
    ReviewQueue,
    release_blockers,
    review_annotation,
    review_queue,
)
from sabha.platform.wire import MAX_DB_ID

from ._auth import current_caller, require_scope, security
from ._blueprint import TAGS, api, json_response
from ._problems import problem_responses

__all__ = ["AnnotationPath", "DatasetPath", "ReviewBody", "ReviewListQuery"]

REVIEW = TokenScope.REVIEW.value
MAINTAIN = TokenScope.MAINTAIN.value
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_LANGUAGE = r"^[A-Za-z0-9-]{2,35}$"


class ReviewListQuery(BaseModel):
    dataset: str | None = Field(default=None, pattern=_NAME, description="Only this dataset")
    language: str | None = Field(
        default=None, pattern=_LANGUAGE, description="Only this language (BCP-47 tag)"
    )
    include_reviewed: bool = Field(
        default=False, description="Also annotations you reviewed in their current version"
    )
    page: int = Field(default=1, ge=1, le=1_000_000, description="The page, from 1")


class AnnotationPath(BaseModel):
    annotation_id: int = Field(ge=1, le=MAX_DB_ID, description="Label Studio's annotation id")


class ReviewBody(BaseModel):
    """A verdict on the version of an annotation the reviewer saw."""

    model_config = ConfigDict(extra="forbid")

    verdict: str = Field(description="accepted or rejected", pattern=r"^(accepted|rejected)$")
    comment: str = Field(
        default="",
        max_length=MAX_COMMENT_CHARS,
        description="Why; a rejection needs one that tells the annotator what to fix",
    )
    version: str = Field(
        min_length=8,
        max_length=64,
        pattern=r"^[0-9a-fA-F]+$",
        description="The annotation's version you reviewed (from the review list)",
    )


class DatasetPath(BaseModel):
    name: str = Field(pattern=_NAME, description="The dataset's name")


def _reviewer() -> User:
    caller = current_caller()
    user = get_session().get(User, caller.user_id) if caller.user_id is not None else None
    if user is None:
        raise NotFoundError("The token's user no longer exists.", "Sign in again.")
    return user


@api.get(
    "/reviews",
    tags=[TAGS["reviews"]],
    security=security(REVIEW),
    responses={200: ReviewQueue, **problem_responses(401, 403)},
)
@require_scope(REVIEW)
def get_reviews(query: ReviewListQuery) -> Response:
    """Annotations to review.

    Each person's latest annotation of each item in datasets released as data,
    never your own, those with fewest reviews first (50 a page). Without
    include_reviewed, only those you have not reviewed in their current version.
    """
    queue = review_queue(
        get_session(),
        _reviewer(),
        dataset=query.dataset,
        language=query.language,
        include_reviewed=query.include_reviewed,
        page=query.page,
    )
    return json_response(queue)


@api.post(
    "/annotations/<int:annotation_id>/review",
    tags=[TAGS["reviews"]],
    security=security(REVIEW),
    responses={201: ReviewPublic, **problem_responses(401, 403, 409)},
)
@require_scope(REVIEW)
def post_review(path: AnnotationPath, body: ReviewBody) -> Response:
    """Accept or reject an annotation.

    Name the version you saw: when the annotation changed since, the review is
    refused (409) and you look again. A later edit of the annotation voids the
    review. Reviewing again replaces your earlier verdict.
    """
    recorded = review_annotation(
        get_engine(),
        path.annotation_id,
        _reviewer(),
        body.verdict,
        body.comment,
        version=body.version,
    )
    return json_response(recorded, 201)


@api.get(
    "/annotations/datasets/<name>/blockers",
    tags=[TAGS["reviews"]],
    security=security(MAINTAIN),
    responses={200: DatasetBlockersPublic, **problem_responses(401, 403)},
)
@require_scope(MAINTAIN)
def get_release_blockers(path: DatasetPath) -> Response:
    """What blocks a dataset's release, per language, against the default gates.

    Items short of distinct annotators, agreement per field, the share of
    annotations nobody reviewed in their current version, reviewer acceptance.
    """
    blockers = release_blockers(get_engine(), path.name, ReleaseGates())
    return json_response(DatasetBlockersPublic.of(blockers))
