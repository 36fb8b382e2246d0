"""Who is calling: ``Authorization: Bearer`` with a personal access token or a worker token.

``sabha_pat_...`` tokens belong to a user and carry scopes (``submit``,
``annotate``, ...); ``sabha_wkr_...`` tokens come from a pool's OAuth2 client
credentials (``/oauth/token``) and carry the scope ``worker``. An operation
marked with ``require_scope`` is checked before its input is validated, so a
caller without the right token learns nothing about the input it would take:
401 (with ``WWW-Authenticate: Bearer``) for a missing, invalid, expired or
revoked token, 403 for a token without the scope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, g, request
from sqlmodel import Session
from werkzeug.wrappers import Response

from sabha.platform.db import get_engine, session_scope
from sabha.platform.errors import AuthenticationFailed, PermissionDenied
from sabha.platform.services.accounts import (
    WORKER_SCOPE,
    WORKER_TOKEN_PREFIX,
    access_token_use_due,
    verify_access_token,
    verify_worker_token,
)

from ._problems import problem_response

__all__ = [
    "SECURITY_SCHEMES",
    "Caller",
    "current_caller",
    "enforce_scopes",
    "optional_caller",
    "require_scope",
    "security",
]

F = TypeVar("F", bound=Callable[..., Any])

SECURITY_SCHEMES: dict[str, Any] = {
    "personalAccessToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal access token (sabha_pat_...) made in the web UI or with "
        "`sabha tokens create`; its scopes decide what it may do.",
    },
    "poolClientCredentials": {
        "type": "oauth2",
        "description": "Volunteer pools: OAuth2 client credentials (client id and secret of a "
        "pool credential) give a short-lived worker token (sabha_wkr_...).",
        "flows": {
            "clientCredentials": {
                "tokenUrl": "/oauth/token",
                "scopes": {WORKER_SCOPE: "Lease and run evaluation work"},
            }
        },
    },
}


def security(scope: str) -> list[dict[str, list[str]]]:
    """The OpenAPI ``security`` of an operation that needs ``scope``."""
    if scope == WORKER_SCOPE:
        return [{"poolClientCredentials": [WORKER_SCOPE]}]
    return [{"personalAccessToken": [scope] if scope else []}]


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of this request.

    Attributes:
        user_id: The token's user (personal access tokens), else None.
        credential_id: The pool credential (worker tokens), else None.
        scopes: What the token may do.
    """

    user_id: int | None
    credential_id: int | None
    scopes: frozenset[str]


def require_scope(scope: str) -> Callable[[F], F]:
    """Mark an operation as needing a bearer token with ``scope`` (checked by ``enforce_scopes``).

    ``scope`` ``""`` takes any valid token. Put it under the route decorator;
    pass ``security=security(scope)`` to the route so the OpenAPI document says
    so too.
    """

    def mark(func: F) -> F:
        func.__sabha_scope__ = scope  # type: ignore[attr-defined]
        return func

    return mark


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            "This operation needs a bearer token (Authorization: Bearer ...).",
            "Send a personal access token (sabha_pat_...) or, for pools, a worker token "
            "from /oauth/token.",
        )
    return token.strip()


def _authenticate() -> Caller:
    token = _bearer_token()
    db = get_engine()
    # Reads only, so a read takes no write lock: a token's time of use is
    # recorded apart, at most once a minute.
    with Session(db) as session:
        if token.startswith(WORKER_TOKEN_PREFIX):
            credential = verify_worker_token(session, token)
            return Caller(None, credential.id, frozenset({WORKER_SCOPE}))
        user, scopes = verify_access_token(session, token, record_use=False)
        use_due = access_token_use_due(session, token)
    if use_due:
        with session_scope(db) as session:
            user, scopes = verify_access_token(session, token)
    return Caller(user.id, None, frozenset(str(s) for s in scopes))


def optional_caller() -> Caller | None:
    """The caller of an operation anyone may call, when it sends a token (else None).

    Raises:
        AuthenticationFailed: the ``Authorization`` header holds no valid token.
    """
    if not request.headers.get("Authorization"):
        return None
    return _authenticate()


def current_caller() -> Caller:
    """The caller ``enforce_scopes`` authenticated for this request.

    Raises:
        AuthenticationFailed: the operation was not marked with ``require_scope``.
    """
    caller: Caller | None = g.get("sabha_caller")
    if caller is None:
        raise AuthenticationFailed("This operation needs a bearer token.", None)
    return caller


def enforce_scopes() -> Response | None:
    """``before_request`` of the API: authenticate marked operations, check their scope."""
    view = current_app.view_functions.get(request.endpoint or "")
    scope = getattr(view, "__sabha_scope__", None)
    if scope is None:
        return None
    try:
        caller = _authenticate()
    except AuthenticationFailed as exc:
        presented = bool(request.headers.get("Authorization"))
        challenge = 'Bearer realm="sabha"' + (', error="invalid_token"' if presented else "")
        return problem_response(
            401,
            exc.message,
            exc.hint,
            kind="unauthenticated",
            headers={"WWW-Authenticate": challenge},
        )
    if scope and scope not in caller.scopes:
        error = PermissionDenied(
            f"This token does not carry the scope {scope!r} that this operation needs.",
            f"Create a token with the {scope!r} scope (your roles must allow it).",
        )
        return problem_response(
            403,
            error.message,
            error.hint,
            kind="insufficient-scope",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
        )
    g.sabha_caller = caller
    return None
