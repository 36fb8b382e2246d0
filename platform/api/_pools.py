"""The lease protocol for volunteer pools: register, lease (one or a batch), heartbeat, submit,
release.

``POST /api/v1/results/batch`` (protocol 1.2) submits the results of several
of the pool's leases at once, each checked as a single post of it is.

Every operation needs a worker token (OAuth2 client credentials, scope
``worker``); the token's pool credential is the pool. A lease is bound to its
pool: another pool's lease is refused with 403 and nothing changes. Bodies
are validated against the wire models (``sabha.platform.wire``), which the
OpenAPI document shows as request bodies; a result larger than
``SABHA_MAX_RESULT_BYTES`` is refused with 413 before it is read, one that
is not JSON with 415, and a malformed one with 422 naming each field.
A batch lease may wait for work (long-poll): only after the token, the
scope and the protocol version were checked and the body validated, so a
stranger cannot hold a thread, and at most ``SABHA_LEASE_WAITERS`` requests
per process wait at once.
"""

from __future__ import annotations

import threading

from flask import Response, current_app, request
from flask_openapi3.types import ResponseDict
from pydantic import BaseModel

from sabha.platform.db import get_engine
from sabha.platform.domain import RunStatus, RunVerdict
from sabha.platform.errors import SabhaError
from sabha.platform.services.accounts import WORKER_SCOPE
from sabha.platform.services.pools import (
    heartbeat_own_lease,
    lease_for_credential,
    leases_for_credential,
    register_credential_pool,
    release_own_lease,
    submit_own_result,
    submit_own_results,
)
from sabha.platform.services.queue import LeaseWaiters, SubmitOutcome
from sabha.platform.services.verification import VerificationPolicy
from sabha.platform.settings import current_settings, lease_waiter_places
from sabha.platform.wire import (
    PROTOCOL_HEADER,
    DbId,
    LeaseBatch,
    LeaseBatchRequest,
    LeaseReceipt,
    LeaseRelease,
    LeaseRenewed,
    LeaseToken,
    OutcomeWord,
    PoolInfo,
    PoolRegistration,
    ResultBatch,
    ResultBatchReceipt,
    ResultOutcome,
    ResultRefusal,
    ShardLease,
    ShardResult,
    SubmitReceipt,
    protocol_refusal,
)

from ._auth import current_caller, require_scope, security
from ._blueprint import TAGS, api, json_response
from ._problems import FieldProblem, problem_of, problem_response, problem_responses

__all__ = ["LeasePath"]

POOL_PROBLEMS: ResponseDict = problem_responses(401, 403, 409, 426)


class LeasePath(BaseModel):
    """A lease, by its shard run id."""

    run_id: DbId


def _credential_id() -> int:
    credential_id = current_caller().credential_id
    assert credential_id is not None  # require_scope(WORKER_SCOPE) admits worker tokens only
    return credential_id


def _lease_seconds() -> int:
    return int(current_settings().lease_seconds)


@api.post(
    "/pools",
    tags=[TAGS["pools"]],
    security=security(WORKER_SCOPE),
    responses={200: PoolInfo, **POOL_PROBLEMS},
)
@require_scope(WORKER_SCOPE)
def post_pool(body: PoolRegistration) -> Response:
    """Register this credential's pool, or update its name and capabilities."""
    settings = current_settings()
    return json_response(
        register_credential_pool(
            get_engine(), _credential_id(), body, settings.replication_new_pool_shards
        )
    )


@api.post(
    "/leases",
    tags=[TAGS["pools"]],
    security=security(WORKER_SCOPE),
    responses={200: ShardLease, 204: None, **POOL_PROBLEMS},
)
@require_scope(WORKER_SCOPE)
def post_lease() -> Response:
    """Lease the next shard this pool may run; 204 when there is none."""
    settings = current_settings()
    lease = lease_for_credential(
        get_engine(),
        _credential_id(),
        _lease_seconds(),
        VerificationPolicy.from_settings(settings),
        settings.local_models_for_volunteers,
    )
    return Response(status=204) if lease is None else json_response(lease)


# -- batch leasing (protocol 1.2) -------------------------------------------------------

_WAITERS_KEY = "sabha.lease_waiters"
_waiters_lock = threading.Lock()
# What a request the process had no room to hold is told: ask again after this long.
_RETRY_AFTER_SECONDS = 1


def _lease_waiters() -> LeaseWaiters:
    """This process's waiting lease requests (``SABHA_LEASE_WAITERS`` of them at most)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _waiters_lock:
        waiters: LeaseWaiters | None = app.extensions.get(_WAITERS_KEY)
        if waiters is None:
            capacity = lease_waiter_places(current_settings())
            waiters = app.extensions[_WAITERS_KEY] = LeaseWaiters(get_engine(), capacity)
        return waiters


@api.post(
    "/leases/batch",
    tags=[TAGS["pools"]],
    security=security(WORKER_SCOPE),
    responses={200: LeaseBatch, **POOL_PROBLEMS},
)
@require_scope(WORKER_SCOPE)
def post_lease_batch(body: LeaseBatchRequest) -> Response:
    """Lease up to max_shards shards at once, waiting up to wait_seconds for work.

    The platform gives at most ``SABHA_LEASE_MAX_SHARDS`` shards a request.
    While no shard is queued, the request waits (long-poll) until one is or
    ``wait_seconds`` pass; a web process holds at most ``SABHA_LEASE_WAITERS``
    waiting requests, and beyond that answers at once with no shards and
    ``Retry-After``. A batch is one request for the rate limit.
    """
    settings = current_settings()
    leases = leases_for_credential(
        get_engine(),
        _credential_id(),
        min(body.max_shards, int(settings.lease_max_shards)),
        body.job_ids,
        _lease_seconds(),
        VerificationPolicy.from_settings(settings),
        settings.local_models_for_volunteers,
        _lease_waiters(),
        body.wait_seconds,
    )
    if leases is None:
        response = json_response(LeaseBatch(leases=[], retry_after=_RETRY_AFTER_SECONDS))
        response.headers["Retry-After"] = str(_RETRY_AFTER_SECONDS)
        return response
    return json_response(LeaseBatch(leases=leases))


# -- the life of a lease ----------------------------------------------------------------


@api.post(
    "/leases/<int:run_id>/heartbeat",
    tags=[TAGS["pools"]],
    security=security(WORKER_SCOPE),
    responses={200: LeaseRenewed, **POOL_PROBLEMS},
)
@require_scope(WORKER_SCOPE)
def post_heartbeat(path: LeasePath, body: LeaseToken) -> Response:
    """Keep a lease alive (409 when it is no longer held)."""
    expires_at = heartbeat_own_lease(
        get_engine(), _credential_id(), path.run_id, body.token, _lease_seconds()
    )
    return json_response(LeaseRenewed.model_validate({"expires_at": expires_at}))


def _check_result_size() -> Response | None:
    """``before_request``: refuse a result of unknown size or that is not JSON, unread.

    It runs after authentication (``enforce_scopes``) and before flask-openapi3
    parses the body against ``ShardResult``. A body over ``SABHA_MAX_RESULT_BYTES``
    was refused with 413 before authentication (``set_request_size_limit``).
    """
    if request.endpoint not in (f"{api.name}.post_result", f"{api.name}.post_results_batch"):
        return None
    if request.content_length is None:
        limit = int(current_settings().max_result_bytes)
        return problem_response(
            411,
            f"A shard result must declare its size; it may have at most {limit} bytes.",
            "Send the result with a Content-Length within the limit "
            "(SABHA_MAX_RESULT_BYTES on the server).",
            kind="result-too-large",
        )
    if not request.is_json:
        return problem_response(
            415,
            f"A shard result must be JSON; this one is {request.mimetype or 'untyped'!r}.",
            "Send the ShardResult document with Content-Type: application/json.",
            kind="unsupported-media-type",
        )
    return None


api.before_request(_check_result_size)


_PROTOCOL_VIEWS = (
    "post_pool",
    "post_lease",
    "post_lease_batch",
    "post_heartbeat",
    "post_result",
    "post_release",
    "post_results_batch",
)


def _check_protocol() -> Response | None:
    """``before_request``: a pool's agent must speak a lease protocol this platform serves.

    An agent too old (or too new in its major version) gets 426 with what to
    upgrade, before anything it sent is read.
    """
    if request.endpoint not in {f"{api.name}.{name}" for name in _PROTOCOL_VIEWS}:
        return None
    refusal = protocol_refusal(request.headers.get(PROTOCOL_HEADER))
    if refusal is None:
        return None
    return problem_response(
        426,
        f"The agent must be upgraded: {refusal}.",
        "Upgrade Sabha on the pool's machine (`git pull && make setup`, or "
        "`pip install -U sabha`, or pull the new worker image), then start the agent again. "
        "Its spooled results are posted after the upgrade.",
        kind="upgrade-required",
    )


api.before_request(_check_protocol)


@api.post(
    "/leases/<int:run_id>/result",
    tags=[TAGS["pools"]],
    security=security(WORKER_SCOPE),
    responses={200: SubmitReceipt, **problem_responses(401, 403, 409, 411, 413, 415)},
)
@require_scope(WORKER_SCOPE)
def post_result(path: LeasePath, body: ShardResult) -> Response:
    """Submit a shard's results (one per leased item; idempotent)."""
    if body.run_id != path.run_id:
        return problem_response(
            422,
            f"The body's run_id {body.run_id} is not the run {path.run_id} of the URL.",
            "Post each result to its own lease's URL.",
            kind="validation",
        )
    policy = VerificationPolicy.from_settings(current_settings())
    outcome = submit_own_result(get_engine(), _credential_id(), body, policy)
    return json_response(_receipt(outcome))


def _receipt(outcome: SubmitOutcome) -> SubmitReceipt:
    return SubmitReceipt(
        status=outcome.status,
        duplicate=outcome.duplicate,
        job_complete=outcome.job_complete,
        verdict=outcome.verdict,
    )


@api.post(
    "/leases/<int:run_id>/release",
    tags=[TAGS["pools"]],
    security=security(WORKER_SCOPE),
    responses={200: LeaseReceipt, **POOL_PROBLEMS},
)
@require_scope(WORKER_SCOPE)
def post_release(path: LeasePath, body: LeaseRelease) -> Response:
    """Hand a lease back: its shard is leased again at once."""
    release_own_lease(get_engine(), _credential_id(), path.run_id, body.token, body.reason)
    return json_response(LeaseReceipt(released=True))


# -- several results in one post (protocol 1.2) -------------------------------------------


@api.post(
    "/results/batch",
    tags=[TAGS["pools"]],
    security=security(WORKER_SCOPE),
    responses={
        200: ResultBatchReceipt,
        **problem_responses(401, 403, 404, 411, 413, 415, 422, 426),
    },
)
@require_scope(WORKER_SCOPE)
def post_results_batch(body: ResultBatch) -> Response:
    """Submit the results of several of this pool's leases in one post (idempotent).

    Each result is checked and stored as a single post of it is (its lease must be
    this pool's own and its token that lease's); the answer has one outcome per
    result, in order: ``accepted``, ``agreed``, ``waiting``, ``late``, ``disagreed``, or
    ``refused`` with what a single post would have been refused with (nothing of
    it stored; the others are stored all the same). A body that is malformed, has
    more than SABHA_MAX_RESULTS_PER_POST results or names a run twice is refused
    whole (422 naming each field) and changes nothing.
    """
    limit = int(current_settings().max_results_per_post)
    errors = []
    if len(body.results) > limit:
        errors.append(
            FieldProblem(
                field="body.results",
                message=f"{len(body.results)} results; a post may carry at most {limit}.",
                fix=f"Post at most {limit} results at a time (SABHA_MAX_RESULTS_PER_POST).",
            )
        )
    seen: set[int] = set()
    for i, result in enumerate(body.results):
        if result.run_id in seen:
            errors.append(
                FieldProblem(
                    field=f"body.results.{i}.run_id",
                    message=f"Shard run {result.run_id} appears more than once.",
                    fix="Post each run's result once.",
                )
            )
        seen.add(result.run_id)
    if errors:
        return problem_response(
            422,
            f"The batch has {len(errors)} invalid field(s); nothing was stored.",
            "Correct the fields listed under errors and send the batch again.",
            kind="validation",
            errors=errors,
        )
    policy = VerificationPolicy.from_settings(current_settings())
    outcomes = submit_own_results(get_engine(), _credential_id(), body.results, policy)
    return json_response(
        ResultBatchReceipt(
            outcomes=[_outcome(r.run_id, o) for r, o in zip(body.results, outcomes, strict=True)]
        )
    )


def _outcome(run_id: int, outcome: SubmitOutcome | SabhaError) -> ResultOutcome:
    """One result's outcome in a batch's answer."""
    if isinstance(outcome, SabhaError):
        problem = problem_of(outcome)
        refusal = ResultRefusal(
            status=problem.status, type=problem.type, detail=problem.detail, fix=problem.fix
        )
        return ResultOutcome(run_id=run_id, outcome="refused", refusal=refusal)
    word: OutcomeWord = "waiting"
    if outcome.status == RunStatus.ACCEPTED:
        word = "accepted"
    elif outcome.status == RunStatus.LATE:
        word = "late"
    elif outcome.verdict == RunVerdict.AGREED:
        word = "agreed"
    elif outcome.verdict is not None:
        word = "disagreed"
    return ResultOutcome(run_id=run_id, outcome=word, receipt=_receipt(outcome))
