"""A real OpenID Connect provider for tests, built with Authlib's server side.

It serves discovery, JWKS, an authorization endpoint that signs in one
configured test user without asking (auto-approve), and a token endpoint
that checks the client secret and the PKCE verifier and returns an ID token
signed with an RSA key made for the test. It runs on loopback in a thread::

    with OidcTestProvider(OidcUser("u-1", "asha@example.org", "asha")) as provider:
        provider.issuer  # http://127.0.0.1:<port>

``token_requests`` and ``authorization_requests`` record what Sabha sent, so
a test can check that PKCE was used; ``nonce_override`` makes the provider
put a wrong nonce into the next ID tokens.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Error, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.core.models import AuthorizationCodeMixin
from flask import Flask, jsonify, request
from joserfc.jwk import RSAKey
from werkzeug.serving import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    """Serves requests without logging each one to stderr."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class OidcUser:
    """The person the provider signs in."""

    subject: str
    email: str
    preferred_username: str
    name: str = "Test User"


@dataclass
class _Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in {"openid", "email", "profile"})

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in {"client_secret_basic", "client_secret_post"}

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class _Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    user: OidcUser
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


class OidcTestProvider:
    """An OpenID Connect provider on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        user: OidcUser,
        client_id: str = "sabha-test",
        client_secret: str = "test-client-secret",
    ) -> None:
        self.user = user
        self.client = _Client(client_id, client_secret, [])
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig"})
        self.codes: dict[str, _Code] = {}
        self.authorization_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self.nonce_override: str | None = None
        self.app = self._make_app()
        self.server = make_server(
            "127.0.0.1", 0, self.app, threaded=True, request_handler=QuietHandler
        )
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def allow_redirect_uri(self, uri: str) -> None:
        """Register Sabha's callback URL for the test client."""
        self.client.redirect_uris.append(uri)

    def __enter__(self) -> OidcTestProvider:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self._thread.join(timeout=5)

    def _make_app(self) -> Flask:
        provider = self
        app = Flask("oidc_test_provider")
        app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"authorization_code": 300}

        class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code: str, req: Any) -> None:
                data = req.payload.data
                provider.codes[code] = _Code(
                    code=code,
                    client_id=req.client.client_id,
                    redirect_uri=req.payload.redirect_uri,
                    scope=req.payload.scope,
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                    user=req.user,
                )

            def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
                found = provider.codes.get(code)
                return found if found and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: _Code) -> None:
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: _Code) -> OidcUser:
                return authorization_code.user

        class IdToken(OpenIDCode):  # type: ignore[misc]
            def exists_nonce(self, nonce: str, req: Any) -> bool:
                return any(c.nonce == nonce for c in provider.codes.values())

            def resolve_client_private_key(self, client: _Client) -> RSAKey:
                return provider.key

            def get_client_claims(self, client: _Client) -> dict[str, Any]:
                return {"iss": provider.issuer, "aud": [client.client_id]}

            def get_authorization_code_claims(self, authorization_code: _Code) -> dict[str, Any]:
                claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
                if provider.nonce_override is not None:
                    claims["nonce"] = provider.nonce_override
                return claims

            def generate_user_info(self, user: OidcUser, scope: str) -> UserInfo:
                return UserInfo(
                    sub=user.subject,
                    email=user.email,
                    email_verified=True,
                    preferred_username=user.preferred_username,
                    name=user.name,
                )

        server = AuthorizationServer(
            app,
            query_client=lambda cid: provider.client if cid == provider.client.client_id else None,
            save_token=lambda token, req: None,
        )
        server.register_grant(
            CodeGrant, [IdToken(require_nonce=True), CodeChallenge(required=True)]
        )

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify(
                issuer=provider.issuer,
                authorization_endpoint=f"{provider.issuer}/authorize",
                token_endpoint=f"{provider.issuer}/token",
                jwks_uri=f"{provider.issuer}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                scopes_supported=["openid", "email", "profile"],
                token_endpoint_auth_methods_supported=["client_secret_basic"],
                code_challenge_methods_supported=["S256"],
            )

        @app.get("/jwks")
        def jwks() -> Any:
            return jsonify(keys=[provider.key.as_dict(private=False)])

        @app.get("/authorize")
        def authorize() -> Any:
            provider.authorization_requests.append(request.args.to_dict())
            try:
                grant = server.get_consent_grant(end_user=provider.user)
            except OAuth2Error as error:
                return jsonify(error=error.error, error_description=error.description), 400
            return server.create_authorization_response(grant_user=provider.user, grant=grant)

        @app.post("/token")
        def token() -> Any:
            provider.token_requests.append(request.form.to_dict())
            return server.create_token_response()

        return app
