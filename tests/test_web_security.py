"""Web security: headers, CSRF, session cookies, production settings, rate limits, proxies."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from flask import Flask, jsonify
from sqlalchemy.engine import Engine
from webtools import csrf_token, make_web_app, sign_in

from sabha.platform.app import create_app
from sabha.platform.db import session_scope
from sabha.platform.errors import SettingsError
from sabha.platform.services.accounts import create_user
from sabha.platform.settings import Settings
from sabha.platform.web import current_user, set_content_security_policy

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_DIRS = [
    REPO / "leaderboards" / "web" / "templates",
    REPO / "platform" / "web" / "templates",
]
STRONG_SECRET = "k" * 48


def _add_probe(app: Flask) -> None:
    """Routes the tests call: one API write and one page write."""

    def probe() -> object:
        user = current_user()
        return jsonify(user=user.username if user else None)

    app.add_url_rule("/api/v1/probe", "probe_api", probe, methods=["GET", "POST"])
    app.add_url_rule("/probe", "probe_page", probe, methods=["GET", "POST"])


@pytest.fixture
def app(sqlite_db: Engine, tmp_path: Path) -> Flask:
    app = make_web_app(sqlite_db, tmp_path)
    _add_probe(app)
    with session_scope(sqlite_db) as session:
        create_user(session, "asha", password="correct horse battery")
        create_user(session, "ravi", password="correct horse battery")
    return app


# -- headers -----------------------------------------------------------------------------


def test_every_response_has_strict_security_headers(app: Flask) -> None:
    client = app.test_client()
    for path in ("/", "/login", "/no-such-page", "/static/leaderboard/sabha.css"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, path
        assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp, path
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
        assert "camera=()" in headers["Permissions-Policy"]
        assert "Strict-Transport-Security" not in headers  # development: plain http works


def test_one_path_can_have_its_own_policy(app: Flask) -> None:
    set_content_security_policy(app, "/api/v1/", "default-src 'self'")
    client = app.test_client()
    assert client.get("/api/v1/probe").headers["Content-Security-Policy"] == "default-src 'self'"
    assert "default-src 'none'" in client.get("/probe").headers["Content-Security-Policy"]


@pytest.mark.parametrize("folder", TEMPLATE_DIRS, ids=lambda p: p.parent.parent.name)
def test_templates_have_no_inline_script_or_style(folder: Path) -> None:
    """The policy forbids inline code: it would not run, so none may be there."""
    for template in folder.glob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert "<style" not in text and " style=" not in text, template.name
        assert not re.search(r"\son[a-z]+=", text), template.name  # onclick= and friends


@pytest.mark.parametrize("folder", TEMPLATE_DIRS, ids=lambda p: p.parent.parent.name)
def test_every_post_form_carries_a_csrf_token(folder: Path) -> None:
    for template in folder.glob("*.html"):
        text = template.read_text(encoding="utf-8")
        for form in re.findall(r"<form\b.*?</form>", text, flags=re.S):
            if 'method="post"' in form:
                assert "csrf_token()" in form, f"{template.name}: {form[:120]}"


# -- production settings -----------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "short-but-not-default"])
def test_production_refuses_a_default_or_short_secret_key(
    tmp_path: Path, secret: str | None
) -> None:
    options = {"secret_key": secret} if secret else {}
    with pytest.raises(SettingsError) as refused:
        create_app(Settings(env="production", data_dir=tmp_path, **options))
    message = str(refused.value)
    assert "SABHA_SECRET_KEY" in message and "secrets.token_urlsafe(48)" in message


def test_production_sends_hsts_and_secure_host_only_cookies(
    sqlite_db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SABHA_PASSWORD_HASHING")  # production refuses the tests' cheap hashing
    app = make_web_app(sqlite_db, tmp_path, env="production", secret_key=STRONG_SECRET)
    with session_scope(sqlite_db) as session:
        create_user(session, "asha", password="correct horse battery")
    client = app.test_client()
    page = client.get("/login", base_url="https://sabha.test")
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    token = csrf_token(page.get_data(as_text=True))
    response = client.post(
        "/login",
        data={"username": "asha", "password": "correct horse battery", "csrf_token": token},
        base_url="https://sabha.test",
        headers={"Referer": "https://sabha.test/login"},
    )
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-sabha=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_development_session_cookie_is_httponly_and_lax(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/login")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("sabha=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_public_url_must_be_an_address(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SABHA_PUBLIC_URL"):
        Settings(data_dir=tmp_path, public_url="sabha.example.org")


# -- CSRF --------------------------------------------------------------------------------


def test_form_post_without_csrf_token_is_refused_readably(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "asha", "correct horse battery")
    response = client.post("/logout")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "reload the page" in page and "Traceback" not in page
    assert client.get("/probe").get_json() == {"user": "asha"}  # still signed in
    token = csrf_token(client.get("/account").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/probe").get_json() == {"user": None}


def test_api_request_with_authorization_header_skips_csrf_and_ignores_the_cookie(
    app: Flask,
) -> None:
    client = app.test_client()
    sign_in(client, "asha", "correct horse battery")
    # A bearer request is CSRF-exempt, so the session cookie must not authenticate it.
    response = client.post("/api/v1/probe", headers={"Authorization": "Bearer nonsense"})
    assert response.status_code == 200 and response.get_json() == {"user": None}
    # Without the header the cookie authenticates, and then CSRF applies.
    refused = client.post("/api/v1/probe")
    assert refused.status_code == 400 and refused.mimetype == "application/problem+json"
    assert refused.get_json()["title"] == "CSRF check failed"
    token = csrf_token(client.get("/account").get_data(as_text=True))
    allowed = client.post("/api/v1/probe", headers={"X-CSRFToken": token})
    assert allowed.get_json() == {"user": "asha"}
    # Nobody signed in: no cookie credential to protect, so the API answers itself.
    stranger = app.test_client()
    assert stranger.post("/api/v1/probe").get_json() == {"user": None}


# -- rate limits -------------------------------------------------------------------------


def _limited_app(db: Engine, tmp_path: Path, **settings: object) -> Flask:
    app = make_web_app(db, tmp_path, rate_limits=True, **settings)
    _add_probe(app)
    with session_scope(db) as session:
        for name in ("asha", "ravi"):
            create_user(session, name, password="correct horse battery")
    return app


def test_sign_in_is_rate_limited_per_address_with_a_readable_page(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    app = _limited_app(sqlite_db, tmp_path, rate_limit_login="3 per minute")
    client = app.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    wrong = {"username": "asha", "password": "wrong password!", "csrf_token": token}
    assert [client.post("/login", data=wrong).status_code for _ in range(3)] == [401] * 3
    response = client.post("/login", data=wrong)
    assert response.status_code == 429 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Too many requests" in page and "3 per 1 minute" in page
    assert response.headers["Retry-After"]
    # Another address is not affected.
    other = app.test_client()
    other_token = csrf_token(
        other.get("/login", environ_base={"REMOTE_ADDR": "10.0.0.9"}).get_data(as_text=True)
    )
    response = other.post(
        "/login",
        data={**wrong, "csrf_token": other_token},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert response.status_code == 401


def test_writes_are_limited_per_user_and_api_gets_problem_json(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    app = _limited_app(sqlite_db, tmp_path, rate_limit_write="2 per minute")
    clients = {}
    for name in ("asha", "ravi"):
        clients[name] = app.test_client()
        sign_in(clients[name], name, "correct horse battery")
    tokens = {
        name: csrf_token(c.get("/account").get_data(as_text=True)) for name, c in clients.items()
    }

    def write(name: str) -> object:
        return clients[name].post("/api/v1/probe", headers={"X-CSRFToken": tokens[name]})

    assert [write("asha").status_code for _ in range(2)] == [200, 200]
    refused = write("asha")
    assert refused.status_code == 429 and refused.mimetype == "application/problem+json"
    body = refused.get_json()
    assert body["status"] == 429 and body["title"] == "Too many requests" and body["detail"]
    # Same address, other user: a separate budget. Reads are not writes.
    assert write("ravi").status_code == 200
    assert clients["asha"].get("/api/v1/probe").status_code == 200


@pytest.mark.parametrize("trusted", [0, 1])
def test_forwarded_for_counts_only_behind_trusted_proxies(
    sqlite_db: Engine, tmp_path: Path, trusted: int
) -> None:
    app = _limited_app(
        sqlite_db, tmp_path, rate_limit_default="2 per minute", trusted_proxies=trusted
    )
    client = app.test_client()
    for n in range(3):
        response = client.get("/probe", headers={"X-Forwarded-For": f"203.0.113.{n}"})
    # Trusted: three different clients; untrusted: one proxy address, over its limit.
    assert response.status_code == (200 if trusted else 429)


def test_rate_limits_are_kept_in_redis_when_configured(sqlite_db: Engine, tmp_path: Path) -> None:
    redis = pytest.importorskip("redis")
    server = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2)
    try:
        server.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable at 127.0.0.1:6379 ({exc})")
    prefix = f"sabha-test-{uuid.uuid4().hex[:12]}"
    try:
        app = _limited_app(
            sqlite_db,
            tmp_path,
            redis_url="redis://127.0.0.1:6379/0",
            rate_limit_prefix=prefix,
            rate_limit_default="2 per minute",
        )
        client = app.test_client()
        assert [client.get("/probe").status_code for _ in range(3)] == [200, 200, 429]
        keys = list(server.scan_iter(f"*{prefix}*"))
        assert keys, "no rate-limit counter was written to Redis"
        # A second app (another gunicorn worker) shares the count.
        other = make_web_app(
            sqlite_db,
            tmp_path,
            rate_limits=True,
            redis_url="redis://127.0.0.1:6379/0",
            rate_limit_prefix=prefix,
            rate_limit_default="2 per minute",
        )
        _add_probe(other)
        assert other.test_client().get("/probe").status_code == 429
    finally:
        for key in server.scan_iter(f"*{prefix}*"):
            server.delete(key)
        server.close()
