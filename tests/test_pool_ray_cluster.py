"""A multi-node pool: a Ray node that vanishes mid-shard, its shard finished on another node.

Real Ray (``ray.cluster_utils.Cluster``: a head without CPUs for engines and
two nodes of one CPU each, all on 127.0.0.1) and real vLLM on CPU (a tiny
model) in the agent's engine actor; the agent talks to the app on a real
HTTP server on loopback. When the node running the engine is removed
mid-shard, the engine call fails, the agent hands the lease back with the
reason, leases the shard again and starts a new engine, which Ray places on
the surviving node; the shard is accepted from that node, once.

Slow: two vLLM engine starts on two cores (~2 min in all; the second engine was
generating ~31 s after the node was removed).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apitools import api_settings, pool_credential
from conftest import write_benchmark
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from werkzeug.serving import make_server

from sabha.platform.app import create_app
from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import RunStatus, Shard, ShardRun
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job
from sabha.platform.wire import ModelSource
from sabha.workers.agent import Agent, AgentOptions, EnginePlacement
from sabha.workers.agent import Engine as AgentEngine
from sabha.workers.platform_client import HttpPlatformClient
from sabha.workers.spool import Spool
from sabha.workers.tiny_models import make_tiny_model

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

QUESTIONS = [
    ("hi-Deva", "गेहूँ की फसल में पहली सिंचाई कब करें?"),
    ("ta-Taml", "நெல் நாற்றுகளை எப்போது நட வேண்டும்?"),
    ("ar-Arab", "متى يجب زراعة القمح؟"),
    ("sw-Latn", "Ni wakati gani mzuri wa kupanda mahindi?"),
]
ITEMS = 64  # one shard, long enough to be cut in the middle


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head (no CPUs for engines) and two one-CPU nodes, on loopback, this process joined."""
    root = Path(tempfile.mkdtemp(prefix="sabha-rc-", dir="/tmp"))  # Unix sockets: short paths
    saved = {
        k: os.environ.get(k)
        for k in ("RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    }
    # Token authentication stays on, with the token of the whole test run (conftest.py).
    os.environ.update(
        RAY_TMPDIR=str(root / "ray"),
        RAY_USAGE_STATS_ENABLED="0",
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
    )
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # an earlier test's Ray in this process: this test needs its own
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "node_ip_address": "127.0.0.1",
            "include_dashboard": False,
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3},
        },
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


class _Watched:
    """An ``EngineClient`` that says when it is about to generate, and on which node.

    It asks the engine for the shard only once ``go`` is set (the test sets it after it
    removed that node), so the node is gone while the lease is held and before any answer
    came back: a tiny model on an idle machine answers a shard in about a second, faster
    than the test can remove a node.
    """

    def __init__(
        self,
        model: ModelSource,
        max_model_len: int,
        started: list[tuple[str, float]],
        go: threading.Event,
    ):
        from sabha.workers.client import EngineClient

        self.inner = EngineClient(model, max_model_len)
        self.started = started
        self.go = go

    def info(self) -> Any:
        return self.inner.info()

    def generate_shards(self, work: Any, max_in_flight: int = 256) -> Any:
        node = self.inner.info().ray_node_id  # waits for the model
        self.started.append((str(node), time.monotonic()))
        self.go.wait(timeout=120)
        yield from self.inner.generate_shards(work, max_in_flight)

    def close(self) -> None:
        self.inner.close()


def test_a_node_removed_mid_shard_has_its_shard_finished_on_another_node(
    cluster: Any, sqlite_db: Engine, tmp_path: Path
) -> None:
    import ray

    from sabha.workers.volunteer import detect_capabilities

    db = sqlite_db
    items = [
        {
            "id": f"r-{i:03d}",
            "language": QUESTIONS[i % 4][0],
            "split": "test",
            "input": {"question": f"{QUESTIONS[i % 4][1]} ({i})"},
            "reference": QUESTIONS[i % 4][1],
        }
        for i in range(ITEMS)
    ]
    bench = write_benchmark(
        tmp_path / "b", items, languages=[q[0] for q in QUESTIONS], decoding={"max_tokens": 256}
    )
    model = make_tiny_model(tmp_path / "tiny", [q for _, q in QUESTIONS] * 20, seed=5)
    # One pool, so no replicas; no rate limits: the agent polls for a second shard every
    # second while it waits for the model, and the per-token write limit is 60 a minute.
    settings = api_settings(
        db,
        tmp_path,
        replication_new_pool_shards=0,
        replication_fraction=0.0,
        replication_audit_jobs=False,
        local_models_for_volunteers=True,  # the agent runs on this machine
        rate_limits=False,
    )
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(
            session, load_benchmark_file(bench), settings.resolved_artifacts_dir
        )
        create_job(session, add_model(session, "tiny", path=model), benchmark, ITEMS)
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()

    started: list[tuple[str, float]] = []
    removed = threading.Event()  # the first engine generates only once its node is gone

    def factory(
        source: ModelSource, max_model_len: int, slot: int, placement: EnginePlacement
    ) -> AgentEngine:
        return _Watched(source, max_model_len, started, removed)

    capabilities = detect_capabilities(ray)
    assert capabilities.ray_nodes == 3
    client = HttpPlatformClient(
        f"http://127.0.0.1:{server.server_port}", *pool_credential(db, "asha"), retry_seconds=30
    )
    agent = Agent(
        client,
        factory,
        Spool(tmp_path / "spool"),
        AgentOptions(pool_name="lab", poll_seconds=1.0, exit_when_idle=True, idle_seconds=3),
        capabilities,
    )
    summary: list[Any] = []
    running = threading.Thread(target=lambda: summary.append(agent.run()), daemon=True)
    running.start()
    try:
        deadline = time.monotonic() + 300
        while not started:
            assert running.is_alive() and time.monotonic() < deadline, "no engine started"
            time.sleep(0.1)
        first_node = started[0][0]
        with Session(db) as session:  # the shard is leased, its engine loaded
            assert session.exec(select(ShardRun.status)).all() == [RunStatus.LEASED]
        victim = next(n for n in cluster.worker_nodes if n.node_id == first_node)
        cluster.remove_node(victim, allow_graceful=False)
        removed_at = time.monotonic()
        removed.set()
        running.join(timeout=400)
        assert not running.is_alive(), "the agent did not finish"
    finally:
        removed.set()  # never leave the engine waiting
        agent.stop()
        running.join(timeout=60)  # before the cluster goes away
        server.shutdown()
        serving.join(timeout=10)

    with Session(db) as session:
        runs = session.exec(select(ShardRun).order_by(col(ShardRun.id))).all()
        shard = session.exec(select(Shard)).one()
    assert [r.status for r in runs] == [RunStatus.RELEASED, RunStatus.ACCEPTED], runs
    assert "engine failed" in (runs[0].error or ""), runs[0].error
    assert shard.accepted_run_id == runs[1].id
    survivor = runs[1].executed_on or {}
    assert survivor.get("ray_node_id") not in (None, first_node)
    assert {n["NodeID"] for n in ray.nodes() if n["Alive"]} >= {survivor["ray_node_id"]}
    assert len(started) == 2 and started[1][0] == survivor["ray_node_id"]
    assert summary and summary[0].engine_failures and summary[0].posted == 1
    print(f"second engine generating {started[1][1] - removed_at:.1f} s after the node was removed")
