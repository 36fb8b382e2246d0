"""Odd requests get a 4xx that says what is wrong, never a 500, on SQLite and PostgreSQL.

Ids past what a database ``integer`` holds (2**31, 2**63, 2**70, 5,000
digits), JSON nested 100,000 deep, bodies of 10 MB, ``false`` where a number
belongs: each is refused before it reaches the database, with a problem
document under ``/api`` and ``/oauth`` and a page elsewhere. The last test
sends them to gunicorn with the shipped config.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from apitools import PROBLEM, api_settings, bearer, pool_credential, user_with_token
from flask.testing import FlaskClient
from pooltools import Platform
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select
from webtools import csrf_token, sign_in

from sabha.platform.app import create_app
from sabha.platform.db import session_scope
from sabha.platform.domain import Pool, Role, Submission, TokenScope
from sabha.platform.services.accounts import create_user
from sabha.platform.settings import Settings

pytestmark = pytest.mark.postgresql

PASSWORD = "correct horse battery"
# (id, the API's answer): a number it can read is an invalid field; 5,000 digits no number.
HUGE_IDS = [(str(2**31), 422), (str(2**63), 422), (str(2**70), 422), ("9" * 5000, 404)]
GRANT = {"grant_type": "client_credentials", "scope": "worker"}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture
def site(db: Engine, tmp_path: Path) -> dict[str, Any]:
    settings = api_settings(db, tmp_path, max_request_bytes=300_000, max_result_bytes=1_000_000)
    app = create_app(settings.model_copy(update={"rate_limits": False}))
    app.config["TESTING"] = True  # a server error would raise here, not hide as a 500
    _, token = user_with_token(
        db, "dev", roles=(Role.SUBMITTER, Role.ADMIN), scopes=(TokenScope.SUBMIT,)
    )
    client_id, secret = pool_credential(db)
    client = app.test_client()
    worker = client.post("/oauth/token", data=GRANT, auth=(client_id, secret)).get_json()
    with session_scope(db) as session:
        everything = [Role.ADMIN, Role.SUBMITTER, Role.VOLUNTEER, Role.ANNOTATOR]
        create_user(session, "asha", password=PASSWORD, roles=everything)
    browser = app.test_client()
    sign_in(browser, "asha", PASSWORD)
    return {
        "client": client,
        "browser": browser,
        "csrf": csrf_token(browser.get("/account").get_data(as_text=True)),
        "token": bearer(token),
        "worker": bearer(worker["access_token"]),
        "db": db,
    }


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == PROBLEM
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status and body["detail"]
    return body


@pytest.mark.parametrize(
    ("big", "status"), HUGE_IDS, ids=["2**31", "2**63", "2**70", "5000 digits"]
)
def test_ids_no_database_can_hold_are_refused_in_every_route(
    site: dict[str, Any], big: str, status: int
) -> None:
    client: FlaskClient = site["client"]
    browser: FlaskClient = site["browser"]
    api_calls = [
        ("GET", f"/api/v1/jobs/{big}/results", None, "path.job_id"),
        ("GET", f"/api/v1/jobs/{big}", None, "path.job_id"),
        ("GET", f"/api/v1/submissions/{big}", site["token"], "path.submission_id"),
        ("POST", f"/api/v1/submissions/{big}/cancel", site["token"], "path.submission_id"),
        ("POST", f"/api/v1/leases/{big}/heartbeat", site["worker"], "path.run_id"),
        ("POST", f"/api/v1/leases/{big}/release", site["worker"], "path.run_id"),
    ]
    for method, url, headers, field in api_calls:
        answer = client.open(url, method=method, headers=headers, json={"token": "t"})
        body = _problem(answer, status)
        assert status == 404 or field in [e["field"] for e in body["errors"]], (url, body)
    result = {"run_id": 1, "token": "t", "results": [], "executed_on": {}}
    answer = client.post(f"/api/v1/leases/{big}/result", json=result, headers=site["worker"])
    body = _problem(answer, status)
    assert status == 404 or "path.run_id" in [e["field"] for e in body["errors"]]

    # Pages and the unversioned API: no such thing (404), whoever asks.
    for url in (f"/jobs/{big}", f"/api/runs/{big}", f"/submissions/{big}"):
        assert browser.get(url).status_code == 404, url
    for url in (
        f"/submissions/{big}/cancel",
        f"/account/tokens/{big}/revoke",
        f"/account/credentials/{big}/revoke",
        f"/admin/users/{big}/roles",
        f"/admin/users/{big}/roles/revoke",
        f"/annotate/projects/{big}/join",
    ):
        answer = browser.post(url, data={"csrf_token": site["csrf"], "role": "reviewer"})
        assert answer.status_code == 404, url


@pytest.mark.parametrize("body", ["[" * 100_000, _nested(65)], ids=["100000", "65"])
def test_json_nested_too_deep_is_a_400_problem(site: dict[str, Any], body: str) -> None:
    client: FlaskClient = site["client"]
    for url, headers in (
        ("/api/v1/submissions", site["token"]),
        ("/api/v1/pools", site["worker"]),
    ):
        answer = client.post(url, data=body, content_type="application/json", headers=headers)
        assert "nested more than 64 levels" in _problem(answer, 400)["detail"], url
    # Within the bound it is read, and refused for its shape.
    shallow = client.post(
        "/api/v1/pools", data=_nested(60), content_type="application/json", headers=site["worker"]
    )
    _problem(shallow, 422)


def test_bodies_over_the_limit_get_413_before_anything_reads_them(site: dict[str, Any]) -> None:
    client: FlaskClient = site["client"]
    ten_mb = b'{"license": "' + b"x" * 10_000_000 + b'"}'
    answer = client.post(
        "/api/v1/submissions", data=ten_mb, content_type="application/json", headers=site["token"]
    )
    body = _problem(answer, 413)
    assert "at most 300000 bytes" in body["detail"] and "SABHA_MAX_REQUEST_BYTES" in body["detail"]
    assert _problem(client.post("/oauth/token", data={"x": "y" * 400_000}), 413)
    page = site["browser"].post("/login", data={"username": "a" * 400_000, "password": "b"})
    assert page.status_code == 413 and page.mimetype == "text/html"
    assert "at most 300000 bytes" in page.get_data(as_text=True)
    # Shard results have their own, larger limit (SABHA_MAX_RESULT_BYTES).
    result = {"run_id": 1, "token": "t", "executed_on": {}, "results": [{"item_id": 1}]}
    within = json.dumps({**result, "padding": "x" * 500_000})
    answer = client.post(
        "/api/v1/leases/1/result",
        data=within,
        content_type="application/json",
        headers=site["worker"],
    )
    assert _problem(answer, 422)["errors"][0]["field"] == "body.padding"
    beyond = json.dumps({**result, "padding": "x" * 1_500_000})
    answer = client.post("/api/v1/leases/1/result", data=beyond, content_type="application/json")
    assert "SABHA_MAX_RESULT_BYTES" in _problem(answer, 413)["detail"]


@pytest.mark.parametrize(
    "capabilities",
    [{"gpus_per_node": False}, {"gpus": True}, {"engines": "2"}, {"memory_bytes": 1.5}],
    ids=["false", "true", "text", "fraction"],
)
def test_only_numbers_are_numbers_in_the_lease_protocol(
    site: dict[str, Any], capabilities: dict[str, Any]
) -> None:
    client: FlaskClient = site["client"]
    registration = {"name": "odd-pool", "capabilities": capabilities}
    body = _problem(client.post("/api/v1/pools", json=registration, headers=site["worker"]), 422)
    (field,) = capabilities
    assert f"body.capabilities.{field}" in [e["field"] for e in body["errors"]]
    with Session(site["db"]) as session:
        assert session.exec(select(Pool).where(Pool.name == "odd-pool")).first() is None


def test_a_submission_with_true_for_a_number_is_refused(site: dict[str, Any]) -> None:
    client: FlaskClient = site["client"]
    submission = {
        "model": {"source": "hub", "repo_id": "org/m", "revision": "a" * 40},
        "benchmarks": ["anything"],
        "license": "apache-2.0",
        "decoding": {"max_tokens": True},
    }
    body = _problem(client.post("/api/v1/submissions", json=submission, headers=site["token"]), 422)
    assert "body.decoding.max_tokens" in [e["field"] for e in body["errors"]]
    with Session(site["db"]) as session:
        assert session.exec(select(func.count()).select_from(Submission)).one() == 0


@pytest.fixture
def served(db: Engine, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """gunicorn with the shipped config, and a pool's worker token for it."""
    client_id, secret = pool_credential(db)
    platform = Platform(db, tmp_path, lease_seconds=60, SABHA_MAX_REQUEST_BYTES="100000")
    platform.start()
    try:
        answer = requests.post(
            f"{platform.url}/oauth/token", data=GRANT, auth=(client_id, secret), timeout=10
        )
        yield platform.url, bearer(answer.json()["access_token"])
    finally:
        platform.stop()


@pytest.mark.slow
def test_gunicorn_answers_odd_requests_with_problems(
    served: tuple[str, dict[str, str]],
) -> None:
    url, worker = served
    json_type = {"Content-Type": "application/json"}

    def problem(answer: requests.Response, status: int) -> dict[str, Any]:
        assert answer.status_code == status, answer.text[:500]
        assert answer.headers["Content-Type"] == PROBLEM
        body: dict[str, Any] = answer.json()
        return body

    assert requests.get(f"{url}/jobs/{2**63}", timeout=10).status_code == 404
    problem(requests.get(f"{url}/api/v1/jobs/{2**70}/results", timeout=10), 422)
    heartbeat = requests.post(
        f"{url}/api/v1/leases/{2**63}/heartbeat", json={"token": "t"}, headers=worker, timeout=10
    )
    problem(heartbeat, 422)
    deep = requests.post(
        f"{url}/api/v1/pools", data="[" * 100_000, headers={**worker, **json_type}, timeout=10
    )
    assert "nested" in problem(deep, 400)["detail"]
    big = requests.post(
        f"{url}/api/v1/pools",
        data=b"[" + b" " * 10_000_000 + b"]",
        headers={**worker, **json_type},
        timeout=30,
    )
    assert "at most 100000 bytes" in problem(big, 413)["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused unread
        yield b'{"name": "'
        for _ in range(100):
            yield b"x" * 100_000
        yield b'"}'

    chunked = requests.post(
        f"{url}/api/v1/pools", data=chunks(), headers={**worker, **json_type}, timeout=30
    )
    assert "Content-Length" in problem(chunked, 411)["fix"]
    odd = requests.post(
        f"{url}/api/v1/pools",
        json={"name": "p", "capabilities": {"gpus_per_node": False}},
        headers=worker,
        timeout=10,
    )
    fields = [e["field"] for e in problem(odd, 422)["errors"]]
    assert fields == ["body.capabilities.gpus_per_node"]


@pytest.mark.parametrize(
    "args",
    [
        ["tokens", "revoke", "--user", "dev", str(2**63)],
        ["credentials", "revoke", "--user", "volunteer", str(2**70)],
        ["jobs", "show", str(2**31)],
        ["status", str(2**63)],
    ],
    ids=["token", "credential", "job", "submission"],
)
def test_the_cli_refuses_ids_no_database_can_hold_readably(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    from click.testing import CliRunner

    from sabha.platform.cli import cli

    monkeypatch.setenv("SABHA_DATABASE_URL", migrated_url)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "is not in the range 1<=x<=2147483647" in result.output


def test_the_depth_bound_keeps_how_json_is_written(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    with app.app_context():
        written = app.json.dumps({"zeta": 1, "alpha": "हिंदी"})
    assert written.index("zeta") < written.index("alpha") and "हिंदी" in written
    assert app.json.loads('{"a": [[1]]}') == {"a": [[1]]}
