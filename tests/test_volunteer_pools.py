"""Two volunteer agents (``sabha worker run``) finish one job over HTTP: real Ray, real vLLM.

Slow (real engines on CPU, ~10 min): each agent has its own Ray and HOME, the
platform is the app on a real HTTP server on 127.0.0.1, and the job's scores
must equal those of a single ``sabha eval`` pool on the same model and items.
Both pools are new, so every shard is replicated on the other owner's pool
and the two runs must agree exactly (same vLLM, dtype and device).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apitools import api_settings, pool_credential
from conftest import REPO, write_benchmark
from evaltools import eval_items, read_scores, remove_ray_dirs, sabha_ok, user_env  # noqa: F401
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from werkzeug.serving import make_server

from sabha.platform.app import create_app
from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import Pool, RunVerdict, Shard, ShardRun
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.usefixtures("remove_ray_dirs")]
ITEMS = 480


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The benchmark file and a tiny model folder, made once."""
    root = tmp_path_factory.mktemp("pools")
    bench = write_benchmark(root / "bench", eval_items(ITEMS), decoding={"max_tokens": 48})
    env = user_env(root / "maker", "maker", f"sqlite:///{root / 'maker.db'}")
    sabha_ok(env, "db", "upgrade")
    sabha_ok(env, "models", "make-tiny", "tiny", "--seed", "5")
    yield bench, root / "maker" / "data" / "models" / "tiny"


@pytest.fixture(scope="module")
def single_pool_scores(
    setup: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str, str], float]:
    """The scores of one `sabha eval` pool (real vLLM) on the same model and items."""
    bench, model = setup
    root = tmp_path_factory.mktemp("single")
    url = f"sqlite:///{root / 'single.db'}"
    env = user_env(root, "single", url)
    sabha_ok(env, "db", "upgrade")
    sabha_ok(env, "benchmarks", "load", str(bench))
    sabha_ok(env, "models", "add", "tiny", "--path", str(model))
    sabha_ok(env, "eval", "--model", "tiny", "--benchmark", "tiny-gen", "--batch-size", "16")
    scores = read_scores(url)
    assert scores
    return scores


@pytest.fixture
def platform(db: Engine, tmp_path: Path, setup: tuple[Path, Path]) -> Iterator[str]:
    bench, model = setup
    settings = api_settings(db, tmp_path, local_models_for_volunteers=True)  # one machine
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(
            session, load_benchmark_file(bench), settings.resolved_artifacts_dir
        )
        create_job(session, add_model(session, "tiny", path=model), benchmark, 16)
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _agent(url: str, env: dict[str, str], owner: str, db: Engine) -> subprocess.Popen[str]:
    client_id, secret = pool_credential(db, owner)
    env = {**env, "SABHA_POOL_CLIENT_ID": client_id, "SABHA_POOL_CLIENT_SECRET": secret}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sabha.platform.cli",
            "worker",
            "run",
            "--server",
            url,
            "--name",
            f"{owner}-pool",
            "--exit-when-idle",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_two_volunteer_agents_finish_a_job_and_score_like_one_pool(
    platform: str,
    db: Engine,
    migrated_url: str,
    single_pool_scores: dict[Any, float],
    tmp_path: Path,
) -> None:
    agents = [
        _agent(platform, user_env(tmp_path / owner, owner, migrated_url), owner, db)
        for owner in ("asha", "bahati")
    ]
    outputs = [agent.communicate(timeout=1500)[0] for agent in agents]
    assert [agent.returncode for agent in agents] == [0, 0], "\n".join(outputs)
    with Session(db) as session:
        shards = session.exec(select(Shard)).all()
        assert shards and all(s.accepted_run_id is not None for s in shards)
        verdicts = session.exec(select(ShardRun.verdict).where(ShardRun.verdict.is_not(None))).all()  # type: ignore[union-attr]
        assert set(verdicts) == {RunVerdict.AGREED}
        pools = session.exec(select(Pool).where(Pool.kind == "remote")).all()
        assert {p.status for p in pools} == {"active"} and all(p.agreements for p in pools)
    assert read_scores(migrated_url) == single_pool_scores
