"""Accounts: the one place adapters import users, roles, tokens and pool credentials from.

Users and roles live in ``users.py``; personal access tokens, pool
credentials and worker tokens in ``credentials.py``; sign-ins of browsers in
``web_sessions.py``; this module re-exports them all and defines the
``*Public`` shapes that pages and JSON show (never an email, a hash or a
secret).

Every function takes the caller's session and only flushes; wrap calls in
``session_scope`` so a refused change leaves nothing behind::

    with session_scope(db) as session:
        user, scopes = verify_access_token(session, header_token)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from sqlmodel import Session

from sabha.platform.domain import (
    AccessToken,
    PoolCredential,
    Role,
    TokenScope,
    User,
    UtcTime,
    id_of,
)

from .credentials import (
    ACCESS_TOKEN_PREFIX,
    POOL_CLIENT_PREFIX,
    WORKER_SCOPE,
    WORKER_TOKEN_PREFIX,
    access_token_use_due,
    create_access_token,
    create_pool_credential,
    identify_bearer_token,
    issue_worker_token,
    list_access_tokens,
    list_pool_credentials,
    revoke_access_token,
    revoke_pool_credential,
    revoke_worker_token,
    verify_access_token,
    verify_client_secret,
    verify_worker_token,
)
from .users import (
    PASSWORD_MAX_CHARS,
    PASSWORD_MIN_CHARS,
    USERNAME_MAX_CHARS,
    USERNAME_MIN_CHARS,
    allowed_scopes,
    authenticate_password,
    create_admin,
    create_user,
    find_or_create_oidc_user,
    get_user,
    grant_role,
    list_users,
    parse_role,
    revoke_role,
    roles_of,
    set_password,
    username_key,
)
from .web_sessions import (
    end_user_web_sessions,
    end_web_session,
    find_web_session,
    start_web_session,
    touch_web_session,
    web_session_needs_touch,
)

__all__ = [
    "ACCESS_TOKEN_PREFIX",
    "PASSWORD_MAX_CHARS",
    "PASSWORD_MIN_CHARS",
    "POOL_CLIENT_PREFIX",
    "USERNAME_MAX_CHARS",
    "USERNAME_MIN_CHARS",
    "WORKER_SCOPE",
    "WORKER_TOKEN_PREFIX",
    "AccessTokenPublic",
    "PoolCredentialPublic",
    "UserPublic",
    "access_token_use_due",
    "allowed_scopes",
    "authenticate_password",
    "create_access_token",
    "create_admin",
    "create_pool_credential",
    "create_user",
    "end_user_web_sessions",
    "end_web_session",
    "find_or_create_oidc_user",
    "find_web_session",
    "get_user",
    "grant_role",
    "identify_bearer_token",
    "issue_worker_token",
    "list_access_tokens",
    "list_pool_credentials",
    "list_users",
    "web_session_needs_touch",
    "parse_role",
    "revoke_access_token",
    "revoke_pool_credential",
    "revoke_role",
    "revoke_worker_token",
    "roles_of",
    "set_password",
    "start_web_session",
    "touch_web_session",
    "user_public",
    "username_key",
    "verify_access_token",
    "verify_client_secret",
    "verify_worker_token",
]

_KNOWN_SCOPES = frozenset(scope.value for scope in TokenScope)


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class UserPublic(_Public):
    """A user as pages and the API show them: never their email or password hash."""

    id: int
    username: str
    display_name: str | None = None
    roles: list[Role]
    created_at: UtcTime

    @classmethod
    def of(cls, user: User, roles: frozenset[Role] | set[Role]) -> UserPublic:
        """The public view of ``user``, who holds ``roles``."""
        return cls(
            id=id_of(user),
            username=user.username,
            display_name=user.display_name,
            roles=sorted(roles),
            created_at=user.created_at,
        )


class AccessTokenPublic(_Public):
    """A personal access token as listed: its name, scopes and times, never the hash.

    ``prefix`` (``sabha_pat_<lookup>``) is the start of the token, so its
    owner can tell which token a listing line is.
    """

    id: int
    name: str
    prefix: str
    scopes: list[TokenScope]
    created_at: UtcTime
    expires_at: UtcTime
    last_used_at: UtcTime | None = None
    revoked_at: UtcTime | None = None

    @classmethod
    def of(cls, token: AccessToken) -> AccessTokenPublic:
        """The public view of a token row."""
        return cls(
            id=id_of(token),
            name=token.name,
            prefix=f"{ACCESS_TOKEN_PREFIX}{token.lookup}",
            scopes=sorted(TokenScope(s) for s in token.scopes if s in _KNOWN_SCOPES),
            created_at=token.created_at,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


class PoolCredentialPublic(_Public):
    """A pool credential as listed: its client id, never the secret or its hash."""

    id: int
    name: str
    client_id: str
    scopes: list[str]
    created_at: UtcTime
    revoked_at: UtcTime | None = None
    last_used_at: UtcTime | None = None

    @classmethod
    def of(cls, credential: PoolCredential) -> PoolCredentialPublic:
        """The public view of a credential row."""
        return cls(
            id=id_of(credential),
            name=credential.name,
            client_id=credential.client_id,
            scopes=list(credential.scopes),
            created_at=credential.created_at,
            revoked_at=credential.revoked_at,
            last_used_at=credential.last_used_at,
        )


def user_public(session: Session, user: User) -> UserPublic:
    """The public view of ``user`` with the roles they hold now."""
    return UserPublic.of(user, roles_of(session, user))
