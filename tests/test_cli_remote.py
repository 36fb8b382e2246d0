"""`sabha login`, `sabha submit` and `sabha status` against a real served app."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apitools import api_settings, user_with_token
from click.testing import CliRunner
from conftest import REPO, generation_items, write_benchmark
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from test_submissions import LLAMA_1B, model_folder
from werkzeug.serving import make_server

from sabha.platform.app import create_app
from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.cli import cli
from sabha.platform.db import make_engine, session_scope, upgrade_database
from sabha.platform.domain import Job, Model, SubmissionJob
from sabha.platform.services.benchmarks import register_benchmark


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight model made as `sabha models make-tiny` makes it."""
    from sabha.platform.services.models import make_tiny

    root = tmp_path_factory.mktemp("tiny")
    scratch = make_engine(f"sqlite:///{root / 'scratch.db'}")
    upgrade_database(scratch)
    path = make_tiny(scratch, root / "models", "tiny-sub", seed=3, chat_template=True)
    scratch.dispose()
    return path


@pytest.fixture
def served(db: Engine, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The app on a real HTTP server on 127.0.0.1, a benchmark, a user and their token."""
    settings = api_settings(db, tmp_path, allow_local_models=True, local_pool_memory_gb=3.0)
    loaded = load_benchmark_file(write_benchmark(tmp_path / "b", generation_items(6)))
    with session_scope(db) as session:
        register_benchmark(session, loaded, settings.resolved_artifacts_dir)
    _, token = user_with_token(db, "dev")
    app = create_app(settings.model_copy(update={"shard_size": 2}))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_port}", "token": token, "db": db}
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return CliRunner()


def _login(runner: CliRunner, served: dict[str, Any]) -> Any:
    return runner.invoke(cli, ["login", "--server", served["url"]], input=served["token"] + "\n")


def test_login_checks_the_token_and_stores_it_for_the_owner_only(
    runner: CliRunner, served: dict[str, Any], tmp_path: Path
) -> None:
    result = _login(runner, served)
    assert result.exit_code == 0, result.output
    assert "Signed in to" in result.output and "as dev" in result.output
    path = tmp_path / "config" / "sabha" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"server": served["url"], "token": served["token"]}
    assert not [p for p in path.parent.iterdir() if p.name != "credentials.json"]


def test_login_with_a_bad_token_stores_nothing(
    runner: CliRunner, served: dict[str, Any], tmp_path: Path
) -> None:
    result = runner.invoke(cli, ["login", "--server", served["url"]], input="sabha_pat_nonsense\n")
    assert result.exit_code == 1
    assert "The access token is not valid." in result.output and "Fix:" in result.output
    assert not (tmp_path / "config" / "sabha" / "credentials.json").exists()


def test_submit_without_login_says_to_log_in(runner: CliRunner, tiny_model: Path) -> None:
    result = runner.invoke(
        cli,
        ["submit", "--model-path", str(tiny_model), "--benchmark", "x", "--license", "mit"],
    )
    assert result.exit_code == 1 and "sabha login --server URL" in result.output


def test_submit_queues_jobs_and_status_shows_each_shard(
    runner: CliRunner, served: dict[str, Any], tiny_model: Path
) -> None:
    assert _login(runner, served).exit_code == 0
    result = runner.invoke(
        cli,
        [
            "submit",
            "--model-path",
            str(tiny_model),
            "--benchmark",
            "tiny-gen",
            "--license",
            "apache-2.0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Submission 1: queued" in result.output
    assert f"Status: {served['url']}/api/v1/submissions/1" in result.output
    with Session(served["db"]) as session:
        [link] = session.exec(select(SubmissionJob)).all()
        job = session.get(Job, link.job_id)
        assert job is not None and job.status == "queued"

    status = runner.invoke(cli, ["status", "1"])
    assert status.exit_code == 0, status.output
    assert "tiny-gen (job" in status.output and "0/3 shards" in status.output
    assert status.output.count("queued") >= 3 and "shard   2" in status.output


def test_submit_of_a_model_too_large_for_every_pool_is_refused(
    runner: CliRunner, served: dict[str, Any], tmp_path: Path
) -> None:
    assert _login(runner, served).exit_code == 0
    folder = model_folder(tmp_path, "big", LLAMA_1B)
    result = runner.invoke(
        cli,
        ["submit", "--model-path", str(folder), "--benchmark", "tiny-gen", "--license", "mit"],
    )
    assert result.exit_code == 1
    assert "needs about 3." in result.output
    assert "the largest pool has 3.0 GB" in result.output
    assert "Traceback" not in result.output


def test_submit_field_errors_are_listed(runner: CliRunner, served: dict[str, Any]) -> None:
    assert _login(runner, served).exit_code == 0
    result = runner.invoke(
        cli,
        [
            "submit",
            "--repo-id",
            "org/model",
            "--revision",
            "main",
            "--benchmark",
            "tiny-gen",
            "--license",
            "mit",
        ],
    )
    assert result.exit_code == 1
    assert "body.model.hub.revision" in result.output


@pytest.mark.slow
def test_submitted_tiny_model_runs_through_the_local_pool(
    runner: CliRunner, tiny_model: Path
) -> None:
    """The whole path: submit from the CLI, `sabha eval` runs the job, the status says so.

    `sabha eval` answers with the stand-in engine here: the submission and the
    queue are the subject; real vLLM behind `sabha eval` is test_inference.py's.
    """
    root = Path(tempfile.mkdtemp(prefix="sabha-sub-", dir="/tmp"))  # short paths for Ray
    (root / "data").mkdir()
    db = make_engine(f"sqlite:///{root / 'data' / 'sabha.db'}")
    server = None
    try:
        upgrade_database(db)
        settings = api_settings(db, root, allow_local_models=True, shard_size=2)
        loaded = load_benchmark_file(write_benchmark(root / "b", generation_items(6)))
        with session_scope(db) as session:
            register_benchmark(session, loaded, settings.resolved_artifacts_dir)
        _, token = user_with_token(db, "dev")
        server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
        assert _login(runner, {"url": url, "token": token}).exit_code == 0
        submitted = runner.invoke(
            cli,
            ["submit", "--model-path", str(tiny_model), "--benchmark", "tiny-gen",
             "--license", "apache-2.0"],
        )  # fmt: skip
        assert submitted.exit_code == 0, submitted.output
        with Session(db) as session:
            [link] = session.exec(select(SubmissionJob)).all()
            job = session.get(Job, link.job_id)
            assert job is not None
            model = session.get(Model, job.model_id)
            assert model is not None
            model_name = model.name
        env = {
            **os.environ,
            "SABHA_DATABASE_URL": str(db.url),
            "SABHA_DATA_DIR": str(root / "data"),
            "HOME": str(root / "home"),
            "RAY_TMPDIR": str(root / "ray"),
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        evaluated = subprocess.run(
            [sys.executable, "-m", "sabha.platform.cli", "eval", "--model", model_name,
             "--benchmark", "tiny-gen", "--stand-in-engine", "0"],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
        status = runner.invoke(cli, ["status", "1"])
        assert status.exit_code == 0, status.output
        assert ": completed" in status.output and "3/3 shards" in status.output
        assert status.output.count(" done ") == 3 and "queued" not in status.output
        shards = create_app(settings).test_client().get(f"/api/v1/jobs/{link.job_id}").get_json()
        assert [s["state"] for s in shards["shard_states"]] == ["done"] * 3
    finally:
        if server is not None:
            server.shutdown()
        db.dispose()
        shutil.rmtree(root, ignore_errors=True)
