"""Submissions through the JSON API: validation before queueing, jobs, status, quota, cancel."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from apitools import PROBLEM, api_settings, bearer, user_with_token
from conftest import ScriptedEngine, generation_items, run_with, write_benchmark
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from sabha.platform.app import create_app
from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Job,
    JobStatus,
    Model,
    Role,
    ScoringRun,
    Shard,
    Submission,
    SubmissionJob,
    TokenScope,
)
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.pools import register_pool
from sabha.platform.services.queue import finalize_job, lease_next_shard

TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 1000,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "torch_dtype": "float32",
}
LLAMA_1B = {
    **TINY_CONFIG,
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
}


def model_folder(root: Path, name: str, config: dict[str, Any]) -> Path:
    """A folder that passes the model-folder checks (the weights are not real)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    (folder / "tokenizer.json").write_text("{}", encoding="utf-8")
    return folder


@pytest.fixture
def setup(db: Engine, tmp_path: Path) -> dict[str, Any]:
    settings = api_settings(db, tmp_path, allow_local_models=True, local_pool_memory_gb=2.0)
    loaded = load_benchmark_file(write_benchmark(tmp_path / "b", generation_items(6)))
    with session_scope(db) as session:
        register_benchmark(session, loaded, settings.resolved_artifacts_dir)
    _, token = user_with_token(db, "dev")
    return {
        "client": create_app(settings.model_copy(update={"shard_size": 2})).test_client(),
        "token": token,
        "db": db,
        "tmp": tmp_path,
    }


@contextmanager
def another_writer(db: Engine) -> Iterator[None]:
    """SQLite's write lock, held from another connection as a busy writer holds it."""
    connection = sqlite3.connect(str(db.url.database), isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def _body(path: Path, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"source": "local", "path": str(path)},
        "benchmarks": ["tiny-gen"],
        "license": "apache-2.0",
    }
    body.update(overrides)
    return body


def _submit(setup: dict[str, Any], body: dict[str, Any], token: str | None = None) -> Any:
    client: FlaskClient = setup["client"]
    return client.post("/api/v1/submissions", json=body, headers=bearer(token or setup["token"]))


def _count(db: Engine, table: Any) -> int:
    with Session(db) as session:
        return int(session.exec(select(func.count()).select_from(table)).one())


def test_submission_queues_jobs_and_shows_each_shard(setup: dict[str, Any]) -> None:
    folder = model_folder(setup["tmp"], "tiny", TINY_CONFIG)
    response = _submit(setup, _body(folder))
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert response.headers["Location"] == created["status_url"]
    assert created["status"] == "queued" and created["license"] == "apache-2.0"
    assert created["model"].startswith("tiny-") and created["estimate_bytes"] > 1e9
    [job] = created["jobs"]
    assert job["benchmark"] == "tiny-gen" and job["status"] == "queued"

    status = setup["client"].get(created["status_url"], headers=bearer(setup["token"]))
    shown = status.get_json()
    [states] = shown["job_states"]
    assert [s["state"] for s in states["shard_states"]] == ["queued"] * 3

    db = setup["db"]
    lease = lease_next_shard(db, register_pool(db, "gpu"), [job["job_id"]])
    assert lease is not None
    shown = setup["client"].get(created["status_url"], headers=bearer(setup["token"])).get_json()
    assert shown["status"] == "running"
    assert shown["job_states"][0]["shard_states"][0]["state"] == "leased"
    listed = setup["client"].get("/api/v1/submissions", headers=bearer(setup["token"]))
    assert [s["id"] for s in listed.get_json()["submissions"]] == [created["id"]]


def test_same_model_twice_shares_the_job(setup: dict[str, Any]) -> None:
    folder = model_folder(setup["tmp"], "tiny", TINY_CONFIG)
    first = _submit(setup, _body(folder)).get_json()
    second = _submit(setup, _body(folder)).get_json()
    assert first["jobs"][0]["job_id"] == second["jobs"][0]["job_id"]
    assert first["model"] == second["model"]
    assert _count(setup["db"], Model) == 1 and _count(setup["db"], SubmissionJob) == 2


def test_model_that_fits_no_pool_is_refused_with_estimate_and_largest_pool(
    setup: dict[str, Any],
) -> None:
    folder = model_folder(setup["tmp"], "big", LLAMA_1B)
    response = _submit(setup, _body(folder))
    assert response.status_code == 422 and response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["type"] == "urn:sabha:problem:model-too-large"
    assert "needs about 3." in problem["detail"]
    assert "the largest pool has 2.0 GB" in problem["detail"]
    assert problem["fix"]
    for table in (Submission, Model, Job):
        assert _count(setup["db"], table) == 0


def test_a_larger_volunteer_pool_makes_it_fit(setup: dict[str, Any]) -> None:
    register_pool(setup["db"], "big-gpu", capabilities={"memory_bytes": 24_000_000_000})
    folder = model_folder(setup["tmp"], "big", LLAMA_1B)
    assert _submit(setup, _body(folder)).status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"benchmarks": ["no-such"]}, "body.benchmarks.0"),
        ({"benchmarks": ["tiny-gen", "tiny-gen"]}, "body.benchmarks.1"),
        ({"decoding": {"max_tokens": 9}}, "body.decoding.max_tokens"),
        ({"decoding": {"temperature": 2.5}}, "body.decoding.temperature"),
        ({"decoding": {"top_p": 0}}, "body.decoding.top_p"),
        ({"decoding": {"seed": 3}}, "body.decoding.seed"),
        ({"license": ""}, "body.license"),
        ({"license": "x" * 51}, "body.license"),
        ({"model": {"source": "local", "path": "relative/dir"}}, "body.model.path"),
        ({"model": {"source": "local", "path": "/no/such/dir"}}, "body.model.path"),
        (
            {"model": {"source": "hub", "repo_id": "org/m", "revision": "main"}},
            "body.model.hub.revision",
        ),
        ({"model": {"source": "ftp", "path": "/x"}}, "body.model"),
    ],
)
def test_invalid_submissions_name_the_field_and_change_nothing(
    setup: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    folder = model_folder(setup["tmp"], "tiny", TINY_CONFIG)
    body = _body(folder)
    body.pop("license") if change == {"license": None} else None
    body.update(change)
    response = _submit(setup, body)
    assert response.status_code == 422, response.get_data(as_text=True)
    problem = response.get_json()
    fields = [e["field"] for e in problem["errors"]]
    assert any(f.startswith(field) for f in fields), fields
    assert all(e["fix"] for e in problem["errors"])
    assert _count(setup["db"], Submission) == 0 and _count(setup["db"], Job) == 0


def test_local_models_need_the_setting(db: Engine, tmp_path: Path) -> None:
    settings = api_settings(db, tmp_path)  # SABHA_ALLOW_LOCAL_MODELS defaults to false
    assert settings.allow_local_models is False
    loaded = load_benchmark_file(write_benchmark(tmp_path / "b", generation_items(2)))
    with session_scope(db) as session:
        register_benchmark(session, loaded, settings.resolved_artifacts_dir)
    _, token = user_with_token(db, "dev")
    folder = model_folder(tmp_path, "tiny", TINY_CONFIG)
    response = (
        create_app(settings)
        .test_client()
        .post("/api/v1/submissions", json=_body(folder), headers=bearer(token))
    )
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "body.model.source"


def test_hub_model_whose_config_cannot_be_read_is_refused(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(setup["tmp"] / "hub"))
    body = _body(Path("/"), model={"source": "hub", "repo_id": "org/m", "revision": "a" * 40})
    response = _submit(setup, body)
    assert response.status_code == 422
    [error] = response.get_json()["errors"]
    assert error["field"] == "body.model" and "config.json of org/m" in error["message"]
    assert _count(setup["db"], Submission) == 0


def test_quota_is_a_429_problem(db: Engine, tmp_path: Path) -> None:
    settings = api_settings(db, tmp_path, allow_local_models=True, submissions_per_day=1)
    loaded = load_benchmark_file(write_benchmark(tmp_path / "b", generation_items(2)))
    with session_scope(db) as session:
        register_benchmark(session, loaded, settings.resolved_artifacts_dir)
    _, token = user_with_token(db, "dev")
    client = create_app(settings).test_client()
    folder = model_folder(tmp_path, "tiny", TINY_CONFIG)
    assert (
        client.post("/api/v1/submissions", json=_body(folder), headers=bearer(token)).status_code
        == 201
    )
    second = client.post("/api/v1/submissions", json=_body(folder), headers=bearer(token))
    assert second.status_code == 429 and second.mimetype == PROBLEM
    assert "the limit is 1" in second.get_json()["detail"]
    # a failure that is the platform's fault gives the submission back
    with session_scope(db) as session:
        job = session.exec(select(Job)).one()
        job.status = JobStatus.FAILED
        job.error = "The vLLM engine died while generating: node lost"
    third = client.post("/api/v1/submissions", json=_body(folder), headers=bearer(token))
    assert third.status_code == 201
    with Session(db) as session:
        flags = [
            s.counts_against_quota for s in session.exec(select(Submission).order_by(Submission.id))
        ]  # type: ignore[arg-type]
    assert flags == [False, True]


def test_model_fault_counts_against_the_quota(setup: dict[str, Any]) -> None:
    created = _submit(setup, _body(model_folder(setup["tmp"], "tiny", TINY_CONFIG))).get_json()
    with session_scope(setup["db"]) as session:
        job = session.get(Job, created["jobs"][0]["job_id"])
        assert job is not None
        job.status = JobStatus.FAILED
        job.error = "vLLM could not load the model at /x: bad weights"
    shown = setup["client"].get(created["status_url"], headers=bearer(setup["token"])).get_json()
    assert shown["status"] == "failed" and "could not load" in shown["reason"]
    assert shown["counts_against_quota"] is True
    assert shown["job_states"][0]["shard_states"][0]["state"] == "failed"


def test_cancel_releases_leases_but_keeps_shared_jobs(setup: dict[str, Any]) -> None:
    db, client = setup["db"], setup["client"]
    folder = model_folder(setup["tmp"], "tiny", TINY_CONFIG)
    mine = _submit(setup, _body(folder)).get_json()
    job_id = mine["jobs"][0]["job_id"]
    lease = lease_next_shard(db, register_pool(db, "gpu"), [job_id])
    assert lease is not None

    _, other_token = user_with_token(db, "other")
    other = _submit(setup, _body(folder), other_token).get_json()
    # others cannot see or cancel it
    assert client.get(mine["status_url"], headers=bearer(other_token)).status_code == 404
    assert (
        client.post(f"{mine['status_url']}/cancel", headers=bearer(other_token)).status_code == 404
    )

    cancelled = client.post(f"{mine['status_url']}/cancel", headers=bearer(setup["token"]))
    assert cancelled.get_json()["status"] == "cancelled"
    with Session(db) as session:
        assert session.get(Job, job_id).status == JobStatus.RUNNING  # type: ignore[union-attr]

    cancelled = client.post(f"{other['status_url']}/cancel", headers=bearer(other_token))
    assert cancelled.get_json()["status"] == "cancelled"
    with Session(db) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.CANCELLED
        shards = session.exec(select(Shard).where(Shard.job_id == job_id)).all()
        assert {s.status for s in shards} == {"queued"}
    assert lease_next_shard(db, register_pool(db, "gpu2"), [job_id]) is None
    shown = client.get(other["status_url"], headers=bearer(other_token)).get_json()
    assert {s["state"] for s in shown["job_states"][0]["shard_states"]} == {"cancelled"}
    first = shown["job_states"][0]["shard_states"][0]
    assert first["reason"] == "the submission was cancelled"


def test_admin_may_cancel_anyones_submission(setup: dict[str, Any]) -> None:
    created = _submit(setup, _body(model_folder(setup["tmp"], "tiny", TINY_CONFIG))).get_json()
    _, admin = user_with_token(
        setup["db"], "root", roles=(Role.ADMIN,), scopes=(TokenScope.SUBMIT, TokenScope.ADMIN)
    )
    response = setup["client"].post(f"{created['status_url']}/cancel", headers=bearer(admin))
    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"


def test_decoding_override_is_its_own_job_scored_but_not_ranked(setup: dict[str, Any]) -> None:
    db, client = setup["db"], setup["client"]
    folder = model_folder(setup["tmp"], "tiny", TINY_CONFIG)
    plain = _submit(setup, _body(folder)).get_json()
    warm = _submit(setup, _body(folder, decoding={"temperature": 0.7, "top_p": 0.9})).get_json()
    same = _submit(setup, _body(folder, decoding={"top_p": 1.0, "max_tokens": 8})).get_json()
    assert warm["jobs"][0]["job_id"] != plain["jobs"][0]["job_id"]
    assert same["jobs"][0]["job_id"] == plain["jobs"][0]["job_id"]
    job_id = warm["jobs"][0]["job_id"]
    with Session(db) as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.decoding == {"max_tokens": 8, "temperature": 0.7, "seed": 0, "top_p": 0.9}
    run_with(db, [job_id], ScriptedEngine())
    assert finalize_job(db, job_id)
    with Session(db) as session:
        assert session.exec(select(ScoringRun).where(ScoringRun.job_id == job_id)).first()
    board = client.get("/api/v1/benchmarks/tiny-gen/leaderboard").get_json()
    assert board["rows"] == []
    shown = client.get(warm["status_url"], headers=bearer(setup["token"])).get_json()
    assert shown["status"] == "completed" and shown["finished_at"]


def test_a_failed_job_fails_the_submission_only_when_every_job_has_stopped(
    setup: dict[str, Any],
) -> None:
    db, tmp = setup["db"], setup["tmp"]
    second = load_benchmark_file(
        write_benchmark(
            tmp / "b2",
            generation_items(4),
            name="tiny-gen-2",
            prompt={"template": "Q: {question}\nA:"},
        )
    )
    with session_scope(db) as session:
        register_benchmark(session, second, tmp / "artifacts-2")
    body = _body(model_folder(tmp, "tiny", TINY_CONFIG), benchmarks=["tiny-gen", "tiny-gen-2"])
    created = _submit(setup, body).get_json()
    first_job, second_job = (job["job_id"] for job in created["jobs"])
    with session_scope(db) as session:
        job = session.get(Job, first_job)
        assert job is not None
        job.status, job.error = JobStatus.FAILED, "the pool's disk is full"
    shown = setup["client"].get(created["status_url"], headers=bearer(setup["token"])).get_json()
    # the other job is still queued: the submission runs on and can be cancelled
    assert shown["status"] == "running" and shown["finished_at"] is None
    with session_scope(db) as session:
        job = session.get(Job, second_job)
        assert job is not None
        job.status = JobStatus.COMPLETED
    shown = setup["client"].get(created["status_url"], headers=bearer(setup["token"])).get_json()
    assert shown["status"] == "failed" and "disk is full" in shown["reason"]
    assert shown["counts_against_quota"] is False  # the platform's fault


def test_reading_a_submission_takes_no_write_lock(setup: dict[str, Any]) -> None:
    db, client, headers = setup["db"], setup["client"], bearer(setup["token"])
    created = _submit(setup, _body(model_folder(setup["tmp"], "tiny", TINY_CONFIG))).get_json()
    with session_scope(db) as session:
        job = session.get(Job, created["jobs"][0]["job_id"])
        assert job is not None
        job.status, job.error = JobStatus.FAILED, "the pool's disk is full"
    with another_writer(db):
        started = time.monotonic()
        shown = client.get(created["status_url"], headers=headers)
        listed = client.get("/api/v1/submissions", headers=headers)
        elapsed = time.monotonic() - started
    assert shown.status_code == 200 and listed.status_code == 200
    assert elapsed < 5  # a write would wait for SQLite's busy timeout (30 s)
    # the status is derived from the jobs; the stored one catches up on a write
    assert (
        shown.get_json()["status"] == "failed" and shown.get_json()["counts_against_quota"] is False
    )
    assert listed.get_json()["submissions"][0]["status"] == "failed"
    with Session(db) as session:
        assert session.exec(select(Submission.status)).one() == "queued"
