"""The OAuth2 authorization server for volunteer pools (Authlib): client credentials.

``POST /oauth/token`` (``grant_type=client_credentials``, scope ``worker``)
authenticates a pool credential by HTTP Basic or by ``client_id`` and
``client_secret`` form fields and answers a short-lived worker token
(``SABHA_WORKER_TOKEN_SECONDS``). ``POST /oauth/revoke`` revokes one (RFC 7009:
an unknown token is not an error). Secrets and tokens are stored hashed by the
accounts service; the table rows are wrapped in ``PoolClient``, which speaks
Authlib's ``ClientMixin``. Errors follow RFC 6749 section 5.2 (``{"error": ...}``),
which OAuth2 client libraries expect.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7009 import RevocationEndpoint
from flask import Blueprint, Flask, Response

from sabha.platform.db import get_engine, session_scope
from sabha.platform.domain import PoolCredential
from sabha.platform.errors import AuthenticationFailed, PermissionDenied
from sabha.platform.services.accounts import (
    WORKER_SCOPE,
    WORKER_TOKEN_PREFIX,
    issue_worker_token,
    revoke_worker_token,
    verify_client_secret,
)
from sabha.platform.settings import current_settings
from sabha.platform.web.security import limit_endpoint, remote_address

__all__ = ["PoolClient", "init_oauth"]

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class PoolClient(ClientMixin):
    """A pool credential as Authlib's OAuth2 client (confidential, client credentials only).

    Args:
        client_id: The credential's client id; the secret is checked against
            its Argon2 hash by ``check_client_secret``.
    """

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.credential_id: int | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return WORKER_SCOPE
        return " ".join(s for s in scope.split() if s == WORKER_SCOPE)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        try:
            with session_scope(get_engine()) as session:
                credential = verify_client_secret(session, self.client_id, client_secret)
                self.credential_id = credential.id
        except AuthenticationFailed:
            return False
        return True

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in CLIENT_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS


class _WorkerTokenRef:
    """A presented worker token, for the revocation endpoint."""

    def __init__(self, plaintext: str) -> None:
        self.plaintext = plaintext

    def check_client(self, client: PoolClient) -> bool:
        # revoke_worker_token leaves tokens of other clients alone, without saying so.
        return True


class WorkerTokenRevocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def query_token(self, token_string: str, token_type_hint: str | None) -> _WorkerTokenRef | None:
        if not token_string.startswith(WORKER_TOKEN_PREFIX) or len(token_string) > 200:
            return None
        return _WorkerTokenRef(token_string)

    def revoke_token(self, token: _WorkerTokenRef, request: Any) -> None:
        client: PoolClient = request.client
        with session_scope(get_engine()) as session:
            credential = session.get(PoolCredential, client.credential_id)
            revoke_worker_token(session, token.plaintext, credential)


def _query_client(client_id: str) -> PoolClient | None:
    return PoolClient(client_id) if 0 < len(client_id) <= 64 else None


def _issue_token(
    grant_type: str,
    client: PoolClient,
    user: Any = None,
    scope: str | None = None,
    expires_in: int | None = None,
    include_refresh_token: bool = False,
) -> dict[str, Any]:
    """Issue (and store, hashed) a worker token: the token generator of the grant."""
    with session_scope(get_engine()) as session:
        credential = session.get(PoolCredential, client.credential_id)
        if credential is None:  # pragma: no cover - authenticated a moment ago
            raise PermissionDenied("The pool credential is gone.", "Create a new one.")
        _, plaintext, lifetime = issue_worker_token(session, credential, scope or WORKER_SCOPE)
    return {
        "token_type": "Bearer",
        "access_token": plaintext,
        "expires_in": lifetime,
        "scope": scope or WORKER_SCOPE,
    }


def _token_saved_when_issued(token: dict[str, Any], request: Any) -> None:
    """The accounts service stored the token's hash when it issued it."""


def init_oauth(app: Flask) -> AuthorizationServer:
    """Register ``/oauth/token`` and ``/oauth/revoke``."""
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", [WORKER_SCOPE])
    server = AuthorizationServer(app, _query_client, _token_saved_when_issued)
    server.register_grant(ClientCredentialsGrant)
    server.register_token_generator("client_credentials", _issue_token)
    server.register_endpoint(WorkerTokenRevocation)
    blueprint = Blueprint("oauth", __name__, url_prefix="/oauth")

    @blueprint.post("/token")
    def token() -> Response:
        response: Response = server.create_token_response()
        return response

    @blueprint.post("/revoke")
    def revoke() -> Response:
        response: Response = server.create_endpoint_response(WorkerTokenRevocation.ENDPOINT_NAME)
        return response

    app.register_blueprint(blueprint)
    # Each call checks a client secret with Argon2: a budget per client address, whatever
    # credentials it carries.
    settings = current_settings(app)
    for endpoint in ("oauth.token", "oauth.revoke"):
        limit_endpoint(app, endpoint, settings.rate_limit_oauth, key_func=remote_address)
    app.extensions["sabha.oauth"] = server
    return server
