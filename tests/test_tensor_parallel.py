"""Models larger than one GPU: tensor-parallel sizing, the engine's Ray request, GPU accounting.

The agent's GPU bookkeeping runs against the real queue (SQLite and
PostgreSQL) with scripted engines; the Ray request is checked as built, and
its placement group on a real local Ray that declares two (pretend) GPUs. A
real tensor-parallel vLLM run needs two GPUs: the ``gpu`` test at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedEngine
from sqlalchemy.engine import Engine
from test_agent import QueueClient, _jobs, _runs, _shards

from sabha.platform.domain import RunStatus, ShardStatus
from sabha.platform.errors import SabhaError
from sabha.platform.services.pools import register_pool
from sabha.platform.services.queue import lease_next_shard
from sabha.platform.wire import (
    CANNOT_RUN_HERE,
    LocalModelSource,
    ModelSource,
    PoolCapabilities,
    ShardLease,
)
from sabha.workers.agent import Agent, AgentOptions, EnginePlacement
from sabha.workers.engine import engine_actor_request, engine_options, place_engine_actor
from sabha.workers.parallel import (
    NoTensorParallelFits,
    attention_heads,
    model_attention_heads,
    tensor_parallel_size,
)
from sabha.workers.spool import Spool
from sabha.workers.volunteer import (
    GpuInfo,
    GpuNode,
    detect_capabilities,
    detect_gpus,
    gpu_nodes,
    nvidia_smi_on_nodes,
    parse_nvidia_smi,
    plan_gpus,
)

GB = 10**9
DATA = Path(__file__).parent / "data"
H200_MIB = 143771


# -- choosing the tensor-parallel size -------------------------------------------------------


def test_the_smallest_tensor_parallel_size_that_holds_the_model_is_chosen() -> None:
    per_gpu = 80 * GB  # 73.6 GB usable at vLLM's 0.92
    assert tensor_parallel_size(None, 32, per_gpu, 8) == 1  # not estimated: one GPU
    assert tensor_parallel_size(70 * GB, 32, per_gpu, 8) == 1
    assert tensor_parallel_size(74 * GB, 32, per_gpu, 8) == 2  # 80 GB raw, but 73.6 usable
    assert tensor_parallel_size(200 * GB, 32, per_gpu, 8) == 4
    assert tensor_parallel_size(500 * GB, 32, per_gpu, 8) == 8
    assert tensor_parallel_size(74 * GB, 32, per_gpu, 8, utilisation=0.95) == 1
    # 12 heads split in 2 or 4, not 8; 6 key/value heads split in 2 only (4 ∤ 6, 6 ∤ 4).
    assert tensor_parallel_size(200 * GB, 12, per_gpu, 8) == 4
    assert tensor_parallel_size(100 * GB, 12, per_gpu, 8, kv_heads=6) == 2
    # Fewer key/value heads than GPUs: each GPU keeps a copy (4 is a multiple of 2).
    assert tensor_parallel_size(200 * GB, 32, per_gpu, 8, kv_heads=2) == 4


def test_no_fitting_size_is_a_clear_error() -> None:
    with pytest.raises(NoTensorParallelFits) as caught:
        tensor_parallel_size(200 * GB, 14, 80 * GB, 8)  # 14 heads: only 1 or 2 GPUs
    message = str(caught.value)
    assert "200.0 GB" in message and "14 attention heads" in message
    assert "147.2 GB on 2 GPU(s)" in message and "Fix:" in message
    with pytest.raises(NoTensorParallelFits, match="up to 2 GPU"):
        tensor_parallel_size(200 * GB, 32, 80 * GB, 2)  # the node has only 2 GPUs
    with pytest.raises(NoTensorParallelFits):
        tensor_parallel_size(100 * GB, 12, 80 * GB, 8, kv_heads=6, utilisation=0.5)
    with pytest.raises(NoTensorParallelFits, match="0 GPUs"):
        tensor_parallel_size(1 * GB, 32, 0, 0)


def test_heads_are_read_from_the_model_config(tmp_path: Path) -> None:
    assert attention_heads({"num_attention_heads": 40, "num_key_value_heads": 8}) == (40, 8)
    assert attention_heads({"n_head": 12}) == (12, 12)  # GPT-2 names
    nested = {"model_type": "llava", "text_config": {"num_attention_heads": 28}}
    assert attention_heads(nested) == (28, 28)
    with pytest.raises(SabhaError, match="num_attention_heads"):
        attention_heads({"hidden_size": 64, "num_attention_heads": "many"})
    folder = tmp_path / "मॉडल"  # any script in a path
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"num_attention_heads": 16, "num_key_value_heads": 4}), encoding="utf-8"
    )
    model = LocalModelSource(name="m", source="local", path=str(folder))
    assert model_attention_heads(model) == (16, 4)
    (folder / "config.json").write_text("{half", encoding="utf-8")
    with pytest.raises(SabhaError, match="cannot be read as JSON"):
        model_attention_heads(model)


def _lease(memory_bytes: int | None, name: str = "m") -> ShardLease:
    return ShardLease.model_validate(
        {
            "run_id": 1,
            "token": "t",
            "job_id": 1,
            "shard_id": 1,
            "shard_index": 0,
            "attempt": 1,
            "replica": 0,
            "expires_at": "2030-01-01T00:00:00Z",
            "model": {
                "name": name,
                "source": "hub",
                "repo_id": f"org/{name}",
                "revision": "a" * 40,
            },
            "max_model_len": 2048,
            "decoding": {},
            "requests": [],
            "memory_bytes": memory_bytes,
        }
    )


def test_the_pool_plans_gpus_per_model_reading_heads_only_when_one_gpu_is_not_enough() -> None:
    caps = PoolCapabilities(device="cuda", gpus=8, memory_bytes_per_gpu=80 * GB, gpus_per_node=4)
    read: list[str] = []

    def heads_of(model: ModelSource) -> tuple[int, int]:
        read.append(model.name)
        return 32, 8

    gpus_for = plan_gpus(caps, None, heads_of)
    assert gpus_for(_lease(None)) == 1 and gpus_for(_lease(50 * GB)) == 1
    assert read == []  # one GPU is enough: the config is not fetched
    assert gpus_for(_lease(100 * GB, "big")) == 2
    assert gpus_for(_lease(250 * GB, "big")) == 4
    assert read == ["big"]  # read once per model
    with pytest.raises(NoTensorParallelFits):
        gpus_for(_lease(300 * GB, "big"))  # 4 GPUs on a node at most
    cpu = plan_gpus(PoolCapabilities(device="cpu", memory_bytes=16 * GB), None, heads_of)
    assert cpu(_lease(100 * GB)) == 1


# -- the engine's Ray request ------------------------------------------------------------------


def test_a_tensor_parallel_engine_asks_for_a_strict_pack_group_of_gpu_bundles() -> None:
    request = engine_actor_request(4, cluster_has_gpus=True, node="10.0.0.7")
    assert request.strategy == "STRICT_PACK"
    assert request.bundles == [
        {"GPU": 1.0, "CPU": 1.0, "node:10.0.0.7": 0.001},
        {"GPU": 1.0},
        {"GPU": 1.0},
        {"GPU": 1.0},
    ]
    assert request.actor_options["num_gpus"] == 0  # vLLM's workers hold the GPUs
    assert request.actor_options["num_cpus"] == 1  # bundle 0's CPU
    assert request.actor_options["max_task_retries"] == 0

    single = engine_actor_request(1, cluster_has_gpus=True, node="10.0.0.7")
    assert single.bundles == [] and single.actor_options["num_gpus"] == 1
    assert single.actor_options["resources"] == {"node:10.0.0.7": 0.001}
    cpu = engine_actor_request(1, cluster_has_gpus=False)
    assert cpu.bundles == [] and cpu.actor_options["num_gpus"] == 0
    assert "resources" not in cpu.actor_options
    with pytest.raises(ValueError, match="needs GPUs"):
        engine_actor_request(2, cluster_has_gpus=False)


def test_vllm_gets_the_tensor_parallel_size_and_the_ray_backend() -> None:
    options = engine_options("/models/m", tensor_parallel_size=2)
    assert options["tensor_parallel_size"] == 2
    assert options["distributed_executor_backend"] == "ray"
    single = engine_options("/models/m")
    assert "tensor_parallel_size" not in single and "distributed_executor_backend" not in single


# -- GPU detection -----------------------------------------------------------------------------


def test_nvidia_smi_lines_are_parsed_and_bad_ones_skipped() -> None:
    text = (DATA / "nvidia-smi-h200.csv").read_text()
    assert parse_nvidia_smi(text) == [GpuInfo("NVIDIA H200", H200_MIB * 1024 * 1024, "580.159.04")]
    two = "NVIDIA A100-SXM4-80GB, 81920, 550.54\nTesla T4, 15360, 550.54\n"
    assert [g.name for g in parse_nvidia_smi(two)] == ["NVIDIA A100-SXM4-80GB", "Tesla T4"]
    assert parse_nvidia_smi("No devices were found\nGPU, [N/A], 1\n\n") == []
    # A name with a comma keeps it: the last two fields are split off.
    assert parse_nvidia_smi("Odd, GPU, 1024, 1.0")[0].name == "Odd, GPU"


def test_gpus_are_read_on_the_gpu_nodes_and_locally_only_when_none_answered() -> None:
    nodes = [GpuNode("n1", "10.0.0.1", 4), GpuNode("n2", "10.0.0.2", 2)]
    answers = {"n1": "NVIDIA H200, 143771, 580.1\n" * 4, "n2": ""}
    asked: list[list[str]] = []

    def on_nodes(gpu_nodes: list[GpuNode]) -> list[str]:
        asked.append([n.node_id for n in gpu_nodes])
        return [answers[n.node_id] for n in gpu_nodes]

    def local_must_not_run() -> str:
        raise AssertionError("the local nvidia-smi was asked although a node answered")

    found = detect_gpus(nodes, on_nodes, local_must_not_run)
    assert len(found) == 4 and {g.name for g in found} == {"NVIDIA H200"}
    assert asked == [["n1", "n2"]]
    # A KubeRay hub whose GPU tasks find no nvidia-smi (or no free GPU): the local call.
    local = "Tesla T4, 15360, 550.54\n"
    nothing = lambda gpu_nodes: [""] * len(gpu_nodes)  # noqa: E731
    assert detect_gpus(nodes, nothing, lambda: local)[0].name == "Tesla T4"
    assert detect_gpus([], on_nodes, lambda: local)[0].name == "Tesla T4"
    assert asked == [["n1", "n2"]]  # no node: no task
    assert detect_gpus(nodes, nothing, lambda: "") == []


class _CpuRay:
    """The two calls ``detect_capabilities`` makes, as a CPU-only Ray cluster answers them."""

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 2.0, "memory": 8.0 * GB}

    def nodes(self) -> list[dict[str, Any]]:
        return [{"Alive": True, "NodeID": "a", "Resources": {"CPU": 2.0}}, {"Alive": False}]


def test_a_cpu_cluster_is_reported_as_a_cpu_pool() -> None:
    caps = detect_capabilities(_CpuRay())
    assert caps.device == "cpu" and caps.gpus == 0 and caps.gpus_per_node == 0
    assert caps.memory_bytes == 8 * GB and caps.engines == 1 and caps.ray_nodes == 1


# -- GPU accounting in the agent ---------------------------------------------------------------


class Engines:
    """Scripted engines that record placements and check no GPU is ever promised twice."""

    def __init__(self, gpus: int, engine: type[ScriptedEngine] = ScriptedEngine) -> None:
        self.gpus = gpus
        self.engine = engine
        self.lock = threading.Lock()
        self.alive: dict[int, int] = {}  # id(engine) -> GPUs
        self.loaded: list[tuple[str, EnginePlacement]] = []
        self.most_in_use = 0

    def __call__(
        self, model: ModelSource, max_model_len: int, slot: int, placement: EnginePlacement
    ) -> ScriptedEngine:
        engines = self
        size = placement.tensor_parallel_size

        class Tracked(self.engine):  # type: ignore[name-defined,misc]
            def close(self) -> None:
                with engines.lock:
                    engines.alive.pop(id(self), None)
                super().close()

        engine = Tracked()
        with self.lock:
            self.alive[id(engine)] = size
            self.loaded.append((model.name, placement))
            self.most_in_use = max(self.most_in_use, sum(self.alive.values()))
        return engine


def _gpu_agent(
    client: QueueClient, engines: Engines, tmp_path: Path, gpus_for: Any, **options: Any
) -> Agent:
    settings = {
        "pool_name": "gpus",
        "gpus_per_node": (("10.0.0.1", engines.gpus),),
        "shards_per_engine": 1,
        "poll_seconds": 0.05,
        "exit_when_idle": True,
        "idle_seconds": 0.3,
        **options,
    }
    return Agent(
        client, engines, Spool(tmp_path / "spool"), AgentOptions(**settings), None, gpus_for
    )


def _sizes(**gpus: int) -> Any:
    return lambda lease: gpus.get(lease.model.name, 1)


def test_a_two_gpu_model_closes_idle_engines_to_make_room(db: Engine, tmp_path: Path) -> None:
    _jobs(db, tmp_path, models=("small", "other", "big"), n_items=4)
    engines = Engines(gpus=2)
    summary = _gpu_agent(QueueClient(db), engines, tmp_path, _sizes(big=2)).run()
    assert summary.finished == summary.posted == 6 and not summary.engine_failures
    assert all(s.status == ShardStatus.COMPLETED for s in _shards(db))
    assert engines.most_in_use <= 2  # never over-committed
    big = [placement for name, placement in engines.loaded if name == "big"]
    assert big and all(p == EnginePlacement(2, "10.0.0.1") for p in big)
    assert {name for name, _ in engines.loaded} == {"small", "other", "big"}


def test_shards_of_a_loaded_big_model_wait_for_it_instead_of_loading_it_twice(
    db: Engine, tmp_path: Path
) -> None:
    _jobs(db, tmp_path, models=("big",), n_items=12)  # 6 shards
    engines = Engines(gpus=3)  # one 2-GPU engine fits; a second copy never does
    summary = _gpu_agent(QueueClient(db), engines, tmp_path, _sizes(big=2)).run()
    assert summary.finished == 6 and not summary.engine_failures
    assert [name for name, _ in engines.loaded] == ["big"]


def test_a_big_model_waits_for_busy_engines_with_its_lease_kept_alive(
    db: Engine, tmp_path: Path
) -> None:
    _jobs(db, tmp_path, models=("small", "big", "later"), n_items=2)
    client = QueueClient(db)
    seen: dict[str, int] = {}
    agent: Agent

    class Busy(ScriptedEngine):
        def generate_shards(self, work: Any, max_in_flight: int = 256) -> Any:
            # Still working when the big model's engine asks for both GPUs; go on
            # until the waiting lease got three heartbeats (or 10 s passed).
            deadline = time.monotonic() + 10
            while not agent.waiting_for_gpus and time.monotonic() < deadline:
                time.sleep(0.01)
            seen["waiting"] = agent.waiting_for_gpus
            seen["leases"] = client.leases
            start = client.heartbeats
            while client.heartbeats - start < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            seen["beats"] = client.heartbeats - start
            seen["leases_after"] = client.leases
            yield from super().generate_shards(work, max_in_flight)

    class ByModel(Engines):
        def __call__(self, model: Any, length: int, slot: int, placement: Any) -> Any:
            self.engine = Busy if model.name == "small" else ScriptedEngine
            return super().__call__(model, length, slot, placement)

    engines = ByModel(gpus=2)
    agent = _gpu_agent(client, engines, tmp_path, _sizes(big=2), heartbeat_seconds=0.05)
    summary = agent.run()
    assert seen["waiting"] == 1 and seen["beats"] >= 3
    assert seen["leases"] == seen["leases_after"] == 2  # none taken while one waited for GPUs
    assert [name for name, _ in engines.loaded] == ["small", "big", "later"]
    assert engines.most_in_use == 2  # each engine was closed before the next took its GPUs
    assert summary.finished == 3 and all(r.status == RunStatus.ACCEPTED for r in _runs(db))


def test_a_model_the_pool_cannot_hold_is_handed_back_and_not_leased_to_it_again(
    db: Engine, tmp_path: Path
) -> None:
    _jobs(db, tmp_path, models=("huge", "wide", "fits"), n_items=4)

    def gpus_for(lease: ShardLease) -> int:
        if lease.model.name == "huge":
            raise NoTensorParallelFits("The model needs about 900.0 GB.", "Leave it.")
        return 4 if lease.model.name == "wide" else 1  # wide: 4 GPUs on a 2-GPU node

    engines = Engines(gpus=2)
    summary = _gpu_agent(QueueClient(db), engines, tmp_path, gpus_for).run()
    assert summary.finished == 2 and len(summary.cannot_run) == 4
    assert not summary.engine_failures
    refused = [r for r in _runs(db) if r.status == RunStatus.RELEASED]
    assert len(refused) == 4  # each refused shard once: the queue does not offer it again
    assert all((r.error or "").startswith(CANNOT_RUN_HERE) for r in refused)
    assert any("900.0 GB" in (r.error or "") for r in refused)
    assert any("does not fit a node" in (r.error or "") for r in refused)
    # Only the model that fits was ever loaded (its two shards may run on two copies, one per
    # GPU, when the second lease comes while the first engine is busy: timing decides).
    assert {name for name, _ in engines.loaded} == {"fits"}
    queued = [s for s in _shards(db) if s.status == ShardStatus.QUEUED]
    assert len(queued) == 4
    other = lease_next_shard(db, register_pool(db, "bigger-pool"))
    assert other is not None and other.model.name == "huge"  # another pool may run it


# -- real Ray: GPU detection in a GPU task, and the placement group vLLM uses ------------------

FAKE_SMI = """#!/bin/sh
# Ray sets CUDA_VISIBLE_DEVICES in a task that holds a GPU; this machine has none.
if [ -n "$CUDA_VISIBLE_DEVICES" ]; then
  echo "NVIDIA H200, 143771, 580.159.04"
else
  echo "Not In A GPU Task, 1024, 1.0"
fi
"""


@pytest.fixture(scope="module")
def ray_with_two_gpus() -> Iterator[Any]:
    """Local Ray declaring two GPUs, with an ``nvidia-smi`` that says where it ran."""
    root = Path(tempfile.mkdtemp(prefix="sabha-tp-", dir="/tmp"))
    smi = root / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text(FAKE_SMI)
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    names = ("PATH", "RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED")
    saved = {k: os.environ.get(k) for k in names}
    # Token authentication stays on, with the token of the whole test run (conftest.py).
    os.environ.update(
        PATH=f"{smi.parent}:{os.environ['PATH']}",
        RAY_TMPDIR=str(root / "ray"),
        RAY_USAGE_STATS_ENABLED="0",
    )
    import ray

    if ray.is_initialized():  # an earlier test's Ray in this process: this test needs its own
        ray.shutdown()
    ray.init(
        num_cpus=2,
        num_gpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_gpus_are_detected_inside_a_ray_gpu_task(ray_with_two_gpus: Any) -> None:
    caps = detect_capabilities(ray_with_two_gpus, memory_fraction=0.8)
    assert caps.device == "cuda" and caps.gpu_name == "NVIDIA H200"  # read in a GPU task
    per_gpu = H200_MIB * 1024 * 1024
    assert caps.gpus == 2 and caps.gpus_per_node == 2 and caps.memory_bytes_per_gpu == per_gpu
    assert caps.memory_bytes == int(per_gpu * 2 * 0.8)  # the largest model on one node
    assert caps.driver == "580.159.04"


@pytest.mark.slow
def test_busy_gpus_fall_back_to_the_local_nvidia_smi(ray_with_two_gpus: Any) -> None:
    ray = ray_with_two_gpus
    nodes = gpu_nodes(ray)
    assert [n.gpus for n in nodes] == [2]
    assert f"node:{nodes[0].address}" in ray.cluster_resources()  # what engines pin to
    group = ray.util.placement_group([{"GPU": 2.0}])  # an engine holds both GPUs
    ray.get(group.ready(), timeout=60)
    try:
        started = time.monotonic()
        assert nvidia_smi_on_nodes(ray, nodes, timeout=1.0) == [""]
        assert time.monotonic() - started < 30
        found = detect_gpus(nodes, lambda n: nvidia_smi_on_nodes(ray, n, timeout=1.0))
        assert [g.name for g in found] == ["Not In A GPU Task"]  # the agent's own machine
    finally:
        ray.util.remove_placement_group(group)


@pytest.mark.slow
def test_the_engine_actor_runs_in_its_placement_group_and_captures_children(
    ray_with_two_gpus: Any,
) -> None:
    ray = ray_with_two_gpus
    request = engine_actor_request(2, cluster_has_gpus=True, node=gpu_nodes(ray)[0].address)
    options, group = place_engine_actor(request, timeout=60)  # pinned to the node
    try:
        assert ray.available_resources().get("GPU", 0) == 0  # both GPUs reserved

        class Driver:
            def group_id(self) -> str | None:
                current = ray.util.get_current_placement_group()
                return current.id.hex() if current else None

            def child_group_id(self) -> str | None:
                # vLLM's workers are children of the driver: they land in the same group.
                @ray.remote(num_gpus=1, num_cpus=0)
                def child() -> str | None:
                    current = ray.util.get_current_placement_group()
                    return current.id.hex() if current else None

                return ray.get(child.remote())

        driver = ray.remote(Driver).options(**options).remote()
        assert ray.get(driver.group_id.remote()) == group.id.hex()
        assert ray.get(driver.child_group_id.remote(), timeout=60) == group.id.hex()
        ray.kill(driver)
    finally:
        ray.util.remove_placement_group(group)


# -- a real tensor-parallel run ----------------------------------------------------------------


def _cuda_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:
        return 0


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.gpu
@pytest.mark.skipif(_cuda_gpus() < 2, reason="needs two CUDA GPUs")
def test_a_tiny_model_runs_with_tensor_parallel_size_two(tmp_path: Path) -> None:
    from sabha.platform.wire import DecodingParams, GenerationRequest
    from sabha.workers.client import EngineClient
    from sabha.workers.local import shutdown_ray
    from sabha.workers.tiny_models import make_tiny_model

    texts = ["गेहूं की बुवाई कब करें?", "Panda mahindi lini?", "நெல் சாகுபடி எப்போது?"]
    path = make_tiny_model(tmp_path / "tiny", texts)  # 2 attention heads: one per GPU
    requests = [GenerationRequest(item_id=i, text=t) for i, t in enumerate(texts)]
    model = LocalModelSource(name="tiny", source="local", path=str(path))
    engine = EngineClient(model, max_model_len=256, memory_fraction=0.3, tensor_parallel_size=2)
    try:
        [(_, results)] = list(engine.generate_shards([(0, requests, DecodingParams(), "never")]))
        assert [r.item_id for r in results] == [0, 1, 2]
        assert all(r.error is None and r.num_tokens > 0 for r in results)
    finally:
        engine.close()
        shutdown_ray()
