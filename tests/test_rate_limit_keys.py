"""Rate limits a stranger cannot dodge: made-up credentials count against the address.

Each sign-in and each OAuth2 call costs an Argon2 hash, so they count per
client address whatever ``Authorization`` header they carry; writes count
against a credential only once it checks out (a valid token's user or pool,
a live session), else against the address. The last test asks gunicorn with
the shipped config, as a stranger with curl would.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import requests
from apitools import PROBLEM, bearer, pool_credential, user_with_token
from flask import Flask
from flask.testing import FlaskClient
from pooltools import Platform
from sqlalchemy.engine import Engine
from webtools import csrf_token, make_web_app

from sabha.platform.db import session_scope
from sabha.platform.services.accounts import create_user

PASSWORD = "correct horse battery"
WRONG = {"username": "asha", "password": "not the password"}


def _limited(db: Engine, tmp_path: Path, **limits: str) -> Flask:
    app = make_web_app(db, tmp_path, rate_limits=True, **limits)
    with session_scope(db) as session:
        create_user(session, "asha", password=PASSWORD)
    return app


def _made_up() -> dict[str, str]:
    return {"Authorization": f"Bearer sabha_pat_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"}


class _FromAddress(requests.adapters.HTTPAdapter):
    """Connections from one loopback address (127.0.0.0/8 is all this machine)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]


def _client_at(address: str) -> requests.Session:
    """A client whose requests come from ``address``: another machine, to the server."""
    session = requests.Session()
    session.mount("http://", _FromAddress(address))
    return session


def _sign_in_attempt(client: FlaskClient, csrf: str, headers: dict[str, str]) -> int:
    return client.post("/login", data={**WRONG, "csrf_token": csrf}, headers=headers).status_code


def test_made_up_authorization_headers_share_the_address_sign_in_budget(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    app = _limited(sqlite_db, tmp_path, rate_limit_login="3 per minute")
    client = app.test_client()
    csrf = csrf_token(client.get("/login").get_data(as_text=True))
    odd_headers = [
        _made_up(),
        {"Authorization": "Basic " + secrets.token_urlsafe(12)},
        {"Authorization": secrets.token_hex(20)},
        _made_up(),
    ]
    statuses = [_sign_in_attempt(client, csrf, headers) for headers in odd_headers]
    assert statuses == [401, 401, 401, 429]
    # Another address has its own budget.
    other = app.test_client()
    other_csrf = csrf_token(
        other.get("/login", environ_base={"REMOTE_ADDR": "10.0.0.9"}).get_data(as_text=True)
    )
    response = other.post(
        "/login",
        data={**WRONG, "csrf_token": other_csrf},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert response.status_code == 401


def test_the_token_endpoint_counts_per_address_whatever_credentials_it_is_sent(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    app = _limited(sqlite_db, tmp_path, rate_limit_oauth="3 per minute")
    client_id, _ = pool_credential(sqlite_db)
    client = app.test_client()
    grant = {"grant_type": "client_credentials", "scope": "worker"}
    statuses = [
        client.post("/oauth/token", data=grant, auth=(client_id, secrets.token_urlsafe(16)))
        for _ in range(3)
    ]
    assert [r.status_code for r in statuses] == [401] * 3
    refused = client.post("/oauth/token", data=grant, auth=(f"x{secrets.token_hex(8)}", "y"))
    assert refused.status_code == 429 and refused.mimetype == PROBLEM
    assert refused.headers["Retry-After"]
    assert client.post("/oauth/revoke", data={"token": "x"}).status_code != 429  # its own budget


def test_made_up_bearer_tokens_share_the_address_write_budget(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    app = _limited(sqlite_db, tmp_path, rate_limit_write="2 per minute")
    client = app.test_client()
    statuses = [
        client.post("/api/v1/submissions", json={}, headers=_made_up()).status_code
        for _ in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_a_valid_token_writes_on_its_users_budget_not_the_addresses(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    app = _limited(sqlite_db, tmp_path, rate_limit_write="2 per minute")
    _, first = user_with_token(sqlite_db, "dev")
    client = app.test_client()
    for _ in range(2):
        assert client.post("/api/v1/submissions", json={}, headers=_made_up()).status_code == 401
    assert client.post("/api/v1/submissions", json={}, headers=_made_up()).status_code == 429
    # The address is spent; a real token still writes, on its user's own budget.
    assert client.post("/api/v1/submissions", json={}, headers=bearer(first)).status_code == 422
    assert client.post("/api/v1/submissions", json={}, headers=bearer(first)).status_code == 422
    assert client.post("/api/v1/submissions", json={}, headers=bearer(first)).status_code == 429


@pytest.mark.slow
def test_gunicorn_limits_a_stranger_with_curl_and_odd_headers(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    with session_scope(sqlite_db) as session:
        create_user(session, "asha", password=PASSWORD)
    client_id, _ = pool_credential(sqlite_db)
    platform = Platform(
        sqlite_db,
        tmp_path,
        lease_seconds=60,
        SABHA_RATE_LIMITS="true",
        SABHA_RATE_LIMIT_LOGIN="3 per minute",
        SABHA_RATE_LIMIT_OAUTH="3 per minute",
        SABHA_RATE_LIMIT_WRITE="3 per minute",
    )
    platform.start()
    try:
        url = platform.url
        # Each attempt a new made-up token, a forged X-Forwarded-For (no proxy is trusted).
        browser = _client_at("127.0.0.2")
        csrf = csrf_token(browser.get(f"{url}/login", timeout=10).text)
        signed_in = []
        for n in range(4):
            headers = {**_made_up(), "X-Forwarded-For": f"203.0.113.{n}"}
            answer = browser.post(
                f"{url}/login", data={**WRONG, "csrf_token": csrf}, headers=headers, timeout=10
            )
            signed_in.append(answer.status_code)
        assert signed_in == [401, 401, 401, 429]
        assert "Too many requests" in answer.text

        curl = _client_at("127.0.0.3")
        grant = {"grant_type": "client_credentials", "scope": "worker"}
        tokens = [
            curl.post(
                f"{url}/oauth/token",
                data=grant,
                auth=(client_id, secrets.token_urlsafe(16)),
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
                timeout=10,
            )
            for n in range(4)
        ]
        assert [t.status_code for t in tokens] == [401, 401, 401, 429]
        assert tokens[-1].headers["Content-Type"] == PROBLEM

        curl = _client_at("127.0.0.4")
        writes = [
            curl.post(f"{url}/api/v1/submissions", json={}, headers=_made_up(), timeout=10)
            for _ in range(4)
        ]
        assert [w.status_code for w in writes] == [401, 401, 401, 429]
        assert writes[-1].headers["Content-Type"] == PROBLEM
        # Another client is not affected.
        fresh = _client_at("127.0.0.5").post(f"{url}/api/v1/submissions", json={}, timeout=10)
        assert fresh.status_code == 401
    finally:
        platform.stop()
