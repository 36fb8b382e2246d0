"""The JSON API's public reads, its OpenAPI document and its problem+json errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import ScriptedEngine, generation_items, run_with, write_benchmark
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from sabha.platform.app import create_app
from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.pools import register_pool
from sabha.platform.services.queue import create_job, lease_next_shard
from sabha.platform.settings import Settings

PROBLEM = "application/problem+json"


def _settings(db: Engine, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", database_url=db.url.render_as_string(hide_password=False)
    )


def _two_jobs(db: Engine, tmp_path: Path, settings: Settings) -> tuple[int, int]:
    loaded = load_benchmark_file(write_benchmark(tmp_path / "b", generation_items(6)))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, settings.resolved_artifacts_dir)
        done = add_model(session, "done-model", repo_id="org/a", revision="a" * 40)
        waiting = add_model(session, "waiting-model", repo_id="org/b", revision="b" * 40)
        done_id = create_job(session, done, benchmark, shard_size=2)[0].id
        waiting_id = create_job(session, waiting, benchmark, shard_size=2)[0].id
    assert done_id is not None and waiting_id is not None
    run_with(db, [done_id], ScriptedEngine())
    return done_id, waiting_id


@pytest.fixture
def site(db: Engine, tmp_path: Path) -> tuple[FlaskClient, int, int, Engine]:
    settings = _settings(db, tmp_path)
    done, waiting = _two_jobs(db, tmp_path, settings)
    return create_app(settings).test_client(), done, waiting, db


def test_benchmarks_and_leaderboard_are_served_under_v1(site: tuple) -> None:
    client, done, _, _ = site
    benchmarks = client.get("/api/v1/benchmarks").get_json()["benchmarks"]
    assert [(b["name"], b["models"]) for b in benchmarks] == [("tiny-gen", 1)]
    board = client.get("/api/v1/benchmarks/tiny-gen/leaderboard?page=1").get_json()
    assert [row["model"]["name"] for row in board["rows"]] == ["done-model"]
    assert board["rows"][0]["job_id"] == done
    # a second read comes from the page cache and answers the same
    again = client.get("/api/v1/benchmarks/tiny-gen/leaderboard?page=1")
    assert again.status_code == 200 and again.get_json() == board


def test_job_status_shows_each_shard_state(site: tuple) -> None:
    client, done, waiting, db = site
    finished = client.get(f"/api/v1/jobs/{done}").get_json()
    assert finished["status"] == "completed" and finished["run_url"] == f"/jobs/{done}"
    # RFC 3339 times with their zone, also where SQLite drops it
    assert finished["finished_at"].endswith(("Z", "+00:00"))
    assert [s["state"] for s in finished["shard_states"]] == ["done"] * 3
    assert all(s["pool"] == "test-pool" for s in finished["shard_states"])

    pool = register_pool(db, "volunteer-1")
    lease = lease_next_shard(db, pool, [waiting])
    assert lease is not None
    status = client.get(f"/api/v1/jobs/{waiting}").get_json()
    assert status["status"] == "running" and status["model"] == "waiting-model"
    assert [s["state"] for s in status["shard_states"]] == ["leased", "queued", "queued"]
    assert status["shard_states"][0]["pool"] == "volunteer-1"
    assert (status["shards"], status["completed_shards"], status["items"]) == (3, 0, 6)


def test_released_shard_carries_the_reason(site: tuple) -> None:
    from sabha.platform.services.queue import heartbeat_lease, release_lease

    client, _, waiting, db = site
    lease = lease_next_shard(db, register_pool(db, "volunteer-2"), [waiting])
    assert lease is not None
    heartbeat_lease(db, lease.run_id, lease.token)
    assert client.get(f"/api/v1/jobs/{waiting}").get_json()["shard_states"][0]["state"] in {
        "running",
        "leased",  # the heartbeat can land in the same clock tick as the lease
    }
    release_lease(db, lease.run_id, lease.token, "out of GPU memory")
    first = client.get(f"/api/v1/jobs/{waiting}").get_json()["shard_states"][0]
    assert (first["state"], first["reason"], first["attempts"]) == (
        "queued",
        "out of GPU memory",
        1,
    )


def test_run_provenance_hides_private_split_items(site: tuple) -> None:
    client, done, _, db = site
    with db.begin() as connection:
        connection.execute(sa.text("UPDATE item SET split = 'private' WHERE key = 't-000'"))
    details = client.get(f"/api/v1/jobs/{done}/results").get_json()
    assert details["id"] == done
    assert "t-000" not in str(details)
    assert "t-000" not in client.get(f"/api/v1/jobs/{done}").get_data(as_text=True)


@pytest.mark.parametrize(
    ("method", "path", "status", "field"),
    [
        ("get", "/api/v1/jobs/999", 404, None),
        ("get", "/api/v1/jobs/999/results", 404, None),
        ("get", "/api/v1/benchmarks/no-such/leaderboard", 404, None),
        ("get", "/api/v1/benchmarks/tiny-gen/leaderboard?page=99", 404, None),
        ("get", "/api/v1/benchmarks/tiny-gen/leaderboard?page=zero", 422, "query.page"),
        ("get", "/api/v1/benchmarks/bad%20name/leaderboard", 422, "path.name"),
        ("get", "/api/v1/jobs/99999999999", 422, "path.job_id"),
        ("get", "/api/v1/no-such-thing", 404, None),
        ("delete", "/api/v1/benchmarks", 405, None),
    ],
)
def test_errors_are_problem_documents(
    site: tuple, method: str, path: str, status: int, field: str | None
) -> None:
    client = site[0]
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert problem["fix"]
    if field:
        assert problem["type"] == "urn:sabha:problem:validation"
        assert [e["field"] for e in problem["errors"]] == [field]
        assert all(e["message"] and e["fix"] for e in problem["errors"])


def test_paths_of_earlier_releases_redirect_with_their_query(site: tuple) -> None:
    """Unversioned /api paths go to /api/v1; a finished job's page and JSON are under /jobs."""
    client, done, _, _ = site
    moved = {
        f"/api/v1/runs/{done}?y=3": f"/api/v1/jobs/{done}/results?y=3",
        f"/runs/{done}": f"/jobs/{done}",
        "/api/benchmarks?x=1": "/api/v1/benchmarks?x=1",
        "/api/benchmarks/tiny-gen/leaderboard?page=1&x=%C3%A9": (
            "/api/v1/benchmarks/tiny-gen/leaderboard?page=1&x=%C3%A9"
        ),
        f"/api/runs/{done}?y=2": f"/api/v1/jobs/{done}/results?y=2",
        f"/api/runs/{done}?q=\u0939": f"/api/v1/jobs/{done}/results?q=%E0%A4%B9",
    }
    for old, new in moved.items():
        response = client.get(old)
        assert response.status_code == 308, old
        assert response.headers["Location"] == new
    assert client.get(f"/runs/{done}", follow_redirects=True).status_code == 200
    followed = client.get("/api/benchmarks/tiny-gen/leaderboard?page=1", follow_redirects=True)
    assert followed.status_code == 200
    assert [row["model"]["name"] for row in followed.get_json()["rows"]] == ["done-model"]


def test_openapi_document_describes_every_operation(sqlite_db: Engine, tmp_path: Path) -> None:
    client = create_app(_settings(sqlite_db, tmp_path)).test_client()
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    assert {"/api/v1/benchmarks", "/api/v1/jobs/{job_id}"} <= set(doc["paths"])
    job = doc["paths"]["/api/v1/jobs/{job_id}"]["get"]
    assert job["responses"]["404"]["content"][PROBLEM]["schema"]["$ref"].endswith("/Problem")
    assert {"Problem", "FieldProblem", "JobStatusPublic", "LeaderboardPage"} <= set(
        doc["components"]["schemas"]
    )
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "GET /api/v1/jobs/{job_id}" in page and 'id="schema-JobStatusPublic"' in page
    assert "<script" not in page
