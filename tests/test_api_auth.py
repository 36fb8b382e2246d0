"""Bearer tokens on the JSON API, and the OAuth2 client-credentials server for pools."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest
from apitools import PROBLEM, api_settings, bearer, pool_credential, user_with_token
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from sabha.platform.app import create_app
from sabha.platform.db import session_scope
from sabha.platform.domain import AccessToken, PoolCredential, Role, TokenScope, WorkerToken


@pytest.fixture
def client(db: Engine, tmp_path: Path) -> FlaskClient:
    return create_app(api_settings(db, tmp_path)).test_client()


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def test_me_answers_for_a_valid_token(db: Engine, client: FlaskClient) -> None:
    _, token = user_with_token(db, "asha")
    me = client.get("/api/v1/me", headers=bearer(token)).get_json()
    assert me["user"]["username"] == "asha" and me["scopes"] == ["submit"]
    assert "email" not in me["user"]


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Basic abc", "Bearer sabha_pat_0000000000000000_" + "x" * 43],
)
def test_missing_or_invalid_token_is_401_with_a_challenge(
    client: FlaskClient, header: str | None
) -> None:
    response = client.get("/api/v1/me", headers={"Authorization": header} if header else {})
    assert response.status_code == 401 and response.mimetype == PROBLEM
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="sabha"')
    assert response.get_json()["fix"]


def test_expired_and_revoked_tokens_are_refused(db: Engine, client: FlaskClient) -> None:
    _, expired = user_with_token(db, "old")
    _, revoked = user_with_token(db, "gone")
    with session_scope(db) as session:
        tokens = {t.user_id: t for t in session.exec(select(AccessToken))}
        first, second = sorted(tokens)
        tokens[first].expires_at = tokens[first].created_at - timedelta(seconds=1)
        tokens[second].revoked_at = tokens[second].created_at
    for token in (expired, revoked):
        response = client.get("/api/v1/me", headers=bearer(token))
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_token_without_the_scope_is_403_before_the_body_is_read(
    db: Engine, client: FlaskClient
) -> None:
    _, annotator = user_with_token(
        db, "anno", roles=(Role.ANNOTATOR,), scopes=(TokenScope.ANNOTATE,)
    )
    response = client.post("/api/v1/submissions", json={}, headers=bearer(annotator))
    assert response.status_code == 403 and response.mimetype == PROBLEM
    assert "insufficient_scope" in response.headers["WWW-Authenticate"]
    assert client.post("/api/v1/submissions", json={}).status_code == 401


def test_token_rows_hold_no_plaintext(db: Engine) -> None:
    _, token = user_with_token(db, "hashme")
    client_id, secret = pool_credential(db)
    with session_scope(db) as session:
        # sabha_pat_<lookup>_<secret>; the secret is URL-safe base64 and may hold "_" itself
        # (its last "_"-piece was once "4", which any hash holds).
        secret_part = token.split("_", 3)[3]
        assert len(secret_part) >= 32
        for row in session.exec(select(AccessToken)):
            assert token not in str(row.model_dump()) and secret_part not in str(row.model_dump())
        for credential in session.exec(select(PoolCredential)):
            assert secret not in str(credential.model_dump())


def test_pool_gets_a_worker_token_uses_it_and_revokes_it(db: Engine, client: FlaskClient) -> None:
    client_id, secret = pool_credential(db)
    answer = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "worker"},
        headers=_basic(client_id, secret),
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    token = answer.get_json()
    assert token["token_type"] == "Bearer" and token["scope"] == "worker"
    assert 60 <= token["expires_in"] <= 86_400
    assert answer.headers["Cache-Control"] == "no-store"
    access = token["access_token"]
    assert access.startswith("sabha_wkr_")

    me = client.get("/api/v1/pools/me", headers=bearer(access)).get_json()
    assert me["credential"]["client_id"] == client_id and me["owner"] == "volunteer"
    # a worker token is not a user's token
    assert client.get("/api/v1/me", headers=bearer(access)).status_code == 403
    assert client.get("/api/v1/submissions", headers=bearer(access)).status_code == 403

    with session_scope(db) as session:
        row = session.exec(select(WorkerToken)).one()
        assert access not in str(row.model_dump())

    revoked = client.post(
        "/oauth/revoke", data={"token": access}, headers=_basic(client_id, secret)
    )
    assert revoked.status_code == 200
    assert client.get("/api/v1/pools/me", headers=bearer(access)).status_code == 401
    # revoking again, or an unknown token, is not an error (RFC 7009)
    again = client.post(
        "/oauth/revoke",
        data={"token": access, "client_id": client_id, "client_secret": secret},
    )
    assert again.status_code == 200


def test_form_client_authentication_works(db: Engine, client: FlaskClient) -> None:
    client_id, secret = pool_credential(db)
    answer = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert answer.status_code == 200
    assert answer.get_json()["scope"] == "worker"


def test_wrong_secret_other_scope_and_revoked_credential_are_refused(
    db: Engine, client: FlaskClient
) -> None:
    from sabha.platform.services.accounts import revoke_pool_credential

    client_id, secret = pool_credential(db)
    wrong = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=_basic(client_id, secret + "x"),
    )
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"
    scope = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        headers=_basic(client_id, secret),
    )
    assert scope.status_code == 400 and scope.get_json()["error"] == "invalid_scope"
    grant = client.post(
        "/oauth/token", data={"grant_type": "password"}, headers=_basic(client_id, secret)
    )
    assert grant.get_json()["error"] == "unsupported_grant_type"

    token = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=_basic(client_id, secret),
    ).get_json()["access_token"]
    with session_scope(db) as session:
        credential = session.exec(select(PoolCredential)).one()
        from sabha.platform.domain import User

        owner = session.get(User, credential.owner_id)
        assert owner is not None and credential.id is not None
        revoke_pool_credential(session, owner, credential.id)
    refused = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=_basic(client_id, secret),
    )
    assert refused.status_code == 401
    # tokens issued before the credential was revoked stop working too
    assert client.get("/api/v1/pools/me", headers=bearer(token)).status_code == 401


def test_openapi_declares_both_security_schemes(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["personalAccessToken"]["scheme"] == "bearer"
    flow = schemes["poolClientCredentials"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/oauth/token" and "worker" in flow["scopes"]
    post = doc["paths"]["/api/v1/submissions"]["post"]
    assert post["security"] == [{"personalAccessToken": ["submit"]}]
    assert "401" in post["responses"] and "403" in post["responses"]
