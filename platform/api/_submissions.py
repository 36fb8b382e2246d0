"""Operations that need a token: who am I, submissions, and a pool's own credential."""

from __future__ import annotations

from flask import Response
from flask_openapi3.types import ResponseDict
from pydantic import BaseModel, Field
from sqlmodel import Session

from sabha.platform.db import get_engine, get_session
from sabha.platform.domain import PoolCredential, TokenScope, User
from sabha.platform.errors import NotFoundError, PermissionDenied
from sabha.platform.services.accounts import (
    WORKER_SCOPE,
    PoolCredentialPublic,
    UserPublic,
    user_public,
)
from sabha.platform.services.submission_status import get_submission, list_submissions
from sabha.platform.services.submissions import cancel_submission, create_submission
from sabha.platform.settings import current_settings
from sabha.platform.wire import (
    MAX_DB_ID,
    SubmissionCreate,
    SubmissionPublic,
    SubmissionStatusPublic,
)

from ._auth import current_caller, require_scope, security
from ._blueprint import TAGS, api, json_response
from ._problems import problem_responses

__all__ = ["MePublic", "PoolMePublic", "SubmissionList", "SubmissionPath"]

SUBMIT = TokenScope.SUBMIT.value
AUTH_PROBLEMS: ResponseDict = problem_responses(401, 403)


class MePublic(BaseModel):
    """The user a personal access token belongs to, and what the token may do."""

    user: UserPublic
    scopes: list[str]


class PoolMePublic(BaseModel):
    """The pool credential a worker token was issued to."""

    credential: PoolCredentialPublic
    owner: str = Field(description="The volunteer who owns the pool")


class SubmissionList(BaseModel):
    """The caller's submissions, newest first (at most 100)."""

    submissions: list[SubmissionPublic]


class SubmissionPath(BaseModel):
    submission_id: int = Field(ge=1, le=MAX_DB_ID, description="The submission's id")


def _user_id() -> int:
    caller = current_caller()
    if caller.user_id is None:
        raise PermissionDenied(
            "A pool's worker token cannot act for a user.",
            "Use a personal access token (sabha_pat_...).",
        )
    return caller.user_id


def _is_admin() -> bool:
    return TokenScope.ADMIN.value in current_caller().scopes


@api.get(
    "/me",
    tags=[TAGS["accounts"]],
    security=security(""),
    responses={200: MePublic, **AUTH_PROBLEMS},
)
@require_scope("")
def get_me() -> Response:
    """Who the token belongs to.

    `sabha login` calls this to check a personal access token.
    """
    session: Session = get_session()
    user = session.get(User, _user_id())
    if user is None:  # deleted between the check and now
        raise NotFoundError("The token's user no longer exists.", "Sign in again.")
    scopes = sorted(current_caller().scopes)
    return json_response(MePublic(user=user_public(session, user), scopes=scopes))


@api.post(
    "/submissions",
    tags=[TAGS["submissions"]],
    security=security(SUBMIT),
    responses={201: SubmissionPublic, **AUTH_PROBLEMS},
)
@require_scope(SUBMIT)
def post_submission(body: SubmissionCreate) -> Response:
    """Submit a model for evaluation.

    The model (a hub repository at a full commit SHA, or a folder on servers that
    allow it), the benchmarks, decoding overrides within each benchmark's bounds
    and the license are all checked, and the model's memory need is estimated
    from its config.json against the pools the platform knows, before anything is
    queued. Refusals are problem documents naming each field and its fix.
    """
    settings = current_settings()
    created = create_submission(get_engine(), settings, _user_id(), body)
    response = json_response(created, 201)
    response.headers["Location"] = created.status_url
    return response


@api.get(
    "/submissions",
    tags=[TAGS["submissions"]],
    security=security(SUBMIT),
    responses={200: SubmissionList, **AUTH_PROBLEMS},
)
@require_scope(SUBMIT)
def get_submissions() -> Response:
    """Your submissions, newest first."""
    return json_response(SubmissionList(submissions=list_submissions(get_engine(), _user_id())))


@api.get(
    "/submissions/<int:submission_id>",
    tags=[TAGS["submissions"]],
    security=security(SUBMIT),
    responses={200: SubmissionStatusPublic, **AUTH_PROBLEMS},
)
@require_scope(SUBMIT)
def get_submission_status(path: SubmissionPath) -> Response:
    """A submission's status per benchmark and per shard.

    Each shard is queued, leased, running, done, failed or cancelled, with the
    reason when an attempt stopped.
    """
    shown = get_submission(get_engine(), path.submission_id, _user_id(), _is_admin())
    return json_response(shown)


@api.post(
    "/submissions/<int:submission_id>/cancel",
    tags=[TAGS["submissions"]],
    security=security(SUBMIT),
    responses={200: SubmissionPublic, **AUTH_PROBLEMS},
)
@require_scope(SUBMIT)
def post_cancel_submission(path: SubmissionPath) -> Response:
    """Cancel a submission.

    Its jobs stop and their leases are released, unless another live submission
    shares a job. A finished submission stays as it is.
    """
    cancelled = cancel_submission(get_engine(), path.submission_id, _user_id(), _is_admin())
    return json_response(cancelled)


@api.get(
    "/pools/me",
    tags=[TAGS["pools"]],
    security=security(WORKER_SCOPE),
    responses={200: PoolMePublic, **AUTH_PROBLEMS},
)
@require_scope(WORKER_SCOPE)
def get_pool_me() -> Response:
    """The pool credential a worker token was issued to."""
    session: Session = get_session()
    credential_id = current_caller().credential_id
    credential = session.get(PoolCredential, credential_id) if credential_id else None
    if credential is None:
        raise PermissionDenied(
            "This operation is for pools' worker tokens.",
            "Get a worker token from /oauth/token with the pool's client credentials.",
        )
    owner = session.get(User, credential.owner_id)
    return json_response(
        PoolMePublic(
            credential=PoolCredentialPublic.of(credential),
            owner=owner.username if owner else "",
        )
    )
