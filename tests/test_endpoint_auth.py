"""Every write endpoint refuses callers who may not write, and then changes nothing.

The endpoints come from the app's URL map when the tests are collected, so a
new endpoint is covered without editing this file. Each is called

(a) with no session and no token,
(b) by a signed-in user who holds no role (URL ids name other people's things),
(c) with an expired personal access token of a user who holds every role,
(d) with a revoked one,

each twice: without a CSRF token, and with a valid one (so the refusal is
about authentication, not only CSRF). Refused means 401 or 403, or a redirect
to the sign-in page; for (b) also 404, since what is not yours is not shown.
After every call a snapshot of every table (row count and checksum) must be
unchanged.
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine
from webtools import csrf_token, make_web_app, sign_in
from werkzeug.routing import IntegerConverter, Rule, UUIDConverter

from sabha.platform.app import create_app
from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
from sabha.platform.catalog import add_model
from sabha.platform.db import make_engine, session_scope, upgrade_database
from sabha.platform.domain import Role, Submission, SubmissionJob, TokenScope
from sabha.platform.services.accounts import (
    create_access_token,
    create_pool_credential,
    create_user,
    revoke_access_token,
)
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job
from sabha.platform.settings import Settings

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
PASSWORD = "correct horse battery"

# Write endpoints anyone may call. Each authenticates by its own credentials or
# writes nothing; they are still called, and must still change nothing.
PUBLIC_WRITES = {
    # Sign-in: checks the username and password it is sent.
    ("POST", "/login"),
    # Ends the caller's own session, whoever calls it (only that web_session row changes).
    ("POST", "/logout"),
    # OAuth2 token endpoint (client credentials): checks the client id and secret it is sent.
    ("POST", "/oauth/token"),
    # OAuth2 revocation (RFC 7009): checks the client credentials it is sent.
    ("POST", "/oauth/revoke"),
}


def _write_rules() -> list[tuple[str, str, str]]:
    """(method, rule, endpoint) of every write route of a freshly built app."""
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(Settings(data_dir=Path(folder), database_url=f"sqlite:///{folder}/x.db"))
        return sorted(
            (method, rule.rule, rule.endpoint)
            for rule in app.url_map.iter_rules()
            for method in sorted((rule.methods or set()) & WRITE_METHODS)
        )


WRITE_RULES = _write_rules()


@dataclass
class Seeded:
    """A database with one of everything, and the app on it."""

    db: Engine
    app: Flask
    expired_token: str = ""
    revoked_token: str = ""
    names: dict[str, Any] = field(default_factory=dict)


# The walk is about authorisation, not the database: SQLite only (the hostile-input
# and schema tests cover PostgreSQL's answers to odd ids and bodies).
@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Seeded]:
    folder = tmp_path_factory.mktemp("endpoint-auth")
    db = make_engine(f"sqlite:///{folder / 'test.db'}")
    upgrade_database(db)
    try:
        yield _seed(db, folder)
    finally:
        db.dispose()


def _seed(db: Engine, folder: Path) -> Seeded:
    seeded = Seeded(db=db, app=make_web_app(db, folder))
    every_role = list(Role)
    with session_scope(db) as session:
        owner = create_user(session, "owner", password=PASSWORD, roles=every_role)
        create_user(session, "norole", password=PASSWORD)
        # URL user ids name her: granting her the admin role would show in the snapshot.
        target = create_user(session, "target", password=PASSWORD, roles=[Role.ANNOTATOR])
        token, _ = create_access_token(session, owner, "live", list(TokenScope))
        expired, seeded.expired_token = create_access_token(
            session, owner, "expired", list(TokenScope)
        )
        expired.expires_at = datetime.now(UTC) - timedelta(days=1)
        session.add(expired)
        revoked, seeded.revoked_token = create_access_token(
            session, owner, "revoked", list(TokenScope)
        )
        revoke_access_token(session, owner, revoked.id or 0)
        credential, _ = create_pool_credential(session, owner, "owner-pool")
        path = next(p for p in starter_benchmark_paths() if p.stem == "kisan-advisory")
        benchmark = register_benchmark(session, load_benchmark_file(path), folder / "artifacts")[0]
        model = add_model(session, "seeded-model", repo_id="org/seeded", revision="a" * 40)
        job = create_job(session, model, benchmark)[0]
        submission = Submission(
            user_id=owner.id or 0,
            model_id=model.id or 0,
            license="apache-2.0",
            benchmarks=[benchmark.name],
        )
        session.add(submission)
        session.flush()
        session.add(SubmissionJob(submission_id=submission.id or 0, job_id=job.id or 0))
        seeded.names = {
            "user_id": target.id,
            "token_id": token.id,
            "credential_id": credential.id,
            "client_id": credential.client_id,
            "job_id": job.id,
            "submission_id": submission.id,
            "model_id": model.id,
            "benchmark_id": benchmark.id,
            "name": benchmark.name,
            "benchmark": benchmark.name,
            "model": model.name,
            "username": target.username,
            "role": Role.REVIEWER.value,
        }
    return seeded


def _url(rule: Rule, names: dict[str, Any]) -> str:
    """The rule with its variables filled with existing ids and names (first row otherwise)."""
    values: dict[str, Any] = {}
    for variable in rule.arguments:
        converter = rule._converters[variable]
        if variable in names:
            values[variable] = names[variable]
        elif isinstance(converter, IntegerConverter):
            values[variable] = 1
        elif isinstance(converter, UUIDConverter):
            values[variable] = uuid.uuid4()
        else:
            values[variable] = names["name"]
    url = rule.build(values, append_unknown=False)
    assert url is not None
    return url[1]


def _snapshot(db: Engine) -> dict[str, tuple[int, str]]:
    """Row count and checksum of every table."""
    tables = sorted(t for t in sa.inspect(db).get_table_names() if t != "alembic_version")
    result = {}
    with db.connect() as connection:
        for table in tables:
            rows = sorted(
                repr(tuple(r)) for r in connection.execute(sa.text(f'SELECT * FROM "{table}"'))
            )
            result[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return result


# A plausible body: form fields the pages take, and JSON for the API.
_FORM = {
    "name": "written-by-an-intruder",
    "role": "admin",
    "scopes": "admin",
    "expires_in_days": "30",
    "username": "target",
    "password": "wrong password",
    "public": "1",
    "profile_name": "intruder",
}


def _call(
    client: FlaskClient, method: str, url: str, *, csrf: str | None, token: str | None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if url.startswith("/api/"):
        if csrf:
            headers["X-CSRFToken"] = csrf
        return client.open(url, method=method, json={"name": _FORM["name"]}, headers=headers)
    data = {**_FORM, **({"csrf_token": csrf} if csrf else {})}
    return client.open(url, method=method, data=data, headers=headers)


def _refusal(response: Any, scenario: str, csrf: bool) -> bool:
    status = response.status_code
    if status in (401, 403):
        return True
    if status == 404 and scenario == "wrong role":
        return True
    if status == 400 and not csrf:
        return True  # the CSRF check; the call with a token shows the auth holds too
    if status in (302, 303):
        return urlsplit(response.headers.get("Location", "")).path == "/login"
    return False


@pytest.mark.parametrize(
    ("method", "rule_path", "endpoint"), WRITE_RULES, ids=[f"{m} {r}" for m, r, _ in WRITE_RULES]
)
def test_write_endpoint_refuses_callers_without_the_right_and_changes_nothing(
    seeded: Seeded, method: str, rule_path: str, endpoint: str
) -> None:
    app = seeded.app
    (rule,) = [
        r for r in app.url_map.iter_rules() if r.rule == rule_path and r.endpoint == endpoint
    ]
    url = _url(rule, seeded.names)
    public = (method, rule_path) in PUBLIC_WRITES

    anonymous = app.test_client()
    no_role = app.test_client()
    sign_in(no_role, "norole", PASSWORD)
    scenarios = [
        ("no session or token", anonymous, None),
        ("wrong role", no_role, None),
        ("expired token", app.test_client(), seeded.expired_token),
        ("revoked token", app.test_client(), seeded.revoked_token),
    ]
    problems = []
    for scenario, client, token in scenarios:
        valid_csrf = csrf_token(client.get("/login").get_data(as_text=True))
        for csrf in (None, valid_csrf):
            before = _snapshot(seeded.db)
            response = _call(client, method, url, csrf=csrf, token=token)
            after = _snapshot(seeded.db)
            label = f"{scenario}, {'with' if csrf else 'without'} a CSRF token"
            changed = sorted(t for t in before if before[t] != after.get(t))
            if (method, rule_path) == ("POST", "/logout"):
                changed = [t for t in changed if t != "web_session"]  # the caller's own
            if changed:
                problems.append(f"{label}: changed tables {changed} (HTTP {response.status_code})")
            if response.status_code >= 500:
                problems.append(f"{label}: server error {response.status_code}")
            elif not public and not _refusal(response, scenario, bool(csrf)):
                problems.append(
                    f"{label}: not refused, HTTP {response.status_code} "
                    f"{response.get_data(as_text=True)[:200]!r}"
                )
    assert not problems, f"{method} {url}:\n" + "\n".join(problems)


def test_the_walk_covers_the_known_write_endpoints() -> None:
    """The URL map really is walked (a guard against an empty parametrisation)."""
    walked = {(m, r) for m, r, _ in WRITE_RULES}
    assert {("POST", "/login"), ("POST", "/account/tokens"), ("POST", "/logout")} <= walked
    assert ("POST", "/admin/users/<dbid:user_id>/roles") in walked
