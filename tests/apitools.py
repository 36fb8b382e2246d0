"""Helpers for JSON API tests: an app on a test database, users with tokens, pool credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from sabha.platform.db import session_scope
from sabha.platform.domain import Role, TokenScope
from sabha.platform.services.accounts import (
    create_access_token,
    create_pool_credential,
    create_user,
)
from sabha.platform.settings import Settings
from sabha.platform.wire import PROTOCOL_HEADER, PROTOCOL_VERSION

PROBLEM = "application/problem+json"


def api_settings(db: Engine, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for an app on ``db`` (SQLite or PostgreSQL)."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": db.url.render_as_string(hide_password=False),
        "local_pool_memory_gb": 8.0,
    }
    values.update(overrides)
    return Settings(**values)


def user_with_token(
    db: Engine,
    username: str,
    roles: tuple[Role, ...] = (Role.SUBMITTER,),
    scopes: tuple[TokenScope, ...] = (TokenScope.SUBMIT,),
    days: int = 30,
) -> tuple[int, str]:
    """A user with ``roles`` and a personal access token with ``scopes``: (user id, token)."""
    with session_scope(db) as session:
        user = create_user(session, username, roles=roles)
        _, plaintext = create_access_token(session, user, "test", scopes, expires_in_days=days)
        assert user.id is not None
        return user.id, plaintext


def pool_credential(db: Engine, owner: str = "volunteer") -> tuple[str, str]:
    """A volunteer and a pool credential of theirs: (client id, secret)."""
    with session_scope(db) as session:
        user = create_user(session, owner, roles=[Role.VOLUNTEER])
        credential, secret = create_pool_credential(session, user, "home GPU")
        return credential.client_id, secret


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a bearer token, and the lease protocol's version (an agent
    sends it with every call; other endpoints ignore it)."""
    return {"Authorization": f"Bearer {token}", PROTOCOL_HEADER: PROTOCOL_VERSION}
