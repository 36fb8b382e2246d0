"""``sabha worker run``: a volunteer's pool on its own Ray, pulling work from a platform.

``run_volunteer`` starts (or joins, with ``ray_address``) Ray, detects the
pool's GPUs and their memory (or the CPU), and runs an ``Agent`` with one
``EngineClient`` (a vLLM actor on one GPU, or on ``k`` GPUs of one node with
tensor parallelism) per engine slot, over an ``HttpPlatformClient``.

GPUs are read with ``nvidia-smi`` inside a Ray task that holds one GPU on each
GPU node, so a KubeRay hub (whose agent runs in a pod without GPUs) still
sees its GPU workers; ``nvidia-smi`` on the agent's own node is the fallback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from sabha.platform.wire import ModelSource, PoolCapabilities, ShardLease

from .agent import (
    Agent,
    AgentOptions,
    AgentSummary,
    Engine,
    EngineFactory,
    EnginePlacement,
    GpusFor,
)
from .parallel import (
    DEFAULT_GPU_UTILISATION,
    TP_SIZES,
    model_attention_heads,
    tensor_parallel_size,
)
from .platform_client import HttpPlatformClient
from .spool import Spool

__all__ = [
    "GpuInfo",
    "GpuNode",
    "detect_capabilities",
    "detect_gpus",
    "engine_factory",
    "gpu_nodes",
    "local_nvidia_smi",
    "nvidia_smi_on_nodes",
    "parse_nvidia_smi",
    "plan_gpus",
    "run_volunteer",
]

log = logging.getLogger("sabha.worker")

SMI_QUERY = "name,memory.total,driver_version"
# A GPU task waits this long for a free GPU before the local nvidia-smi is asked instead.
SMI_TASK_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as ``nvidia-smi`` describes it."""

    name: str
    memory_bytes: int
    driver: str


@dataclass(frozen=True)
class GpuNode:
    """A Ray node with GPUs: its id, its address (``node:<address>`` pins to it), its GPUs."""

    node_id: str
    address: str
    gpus: int


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """GPUs from ``nvidia-smi --query-gpu=name,memory.total,driver_version
    --format=csv,noheader,nounits`` (memory in MiB); lines that do not parse are skipped."""
    gpus = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.rsplit(",", 2)]
        if len(parts) != 3:
            continue
        name, memory_mib, driver = parts
        try:
            memory = int(float(memory_mib) * 1024 * 1024)
        except ValueError:
            continue
        if name and memory > 0:
            gpus.append(GpuInfo(name, memory, driver))
    return gpus


def local_nvidia_smi() -> str:
    """What ``nvidia-smi`` says on this machine ("" when it is missing or fails)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return ""
    try:
        return subprocess.run(
            [smi, f"--query-gpu={SMI_QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def gpu_nodes(ray: Any) -> list[GpuNode]:
    """The live nodes of the Ray cluster that have GPUs, biggest first."""
    nodes = []
    for node in ray.nodes():
        gpus = int((node.get("Resources") or {}).get("GPU", 0))
        if node.get("Alive") and gpus >= 1:
            address = str(node.get("NodeManagerAddress", ""))
            nodes.append(GpuNode(str(node["NodeID"]), address, gpus))
    return sorted(nodes, key=lambda n: -n.gpus)


def nvidia_smi_on_nodes(
    ray: Any, nodes: list[GpuNode], timeout: float = SMI_TASK_TIMEOUT_SECONDS
) -> list[str]:
    """``nvidia-smi`` in a Ray task holding one GPU of each node, all at once.

    Returns:
        One answer per node; "" where no GPU came free within ``timeout`` or
        the task failed.
    """
    import time

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_gpus=1, num_cpus=0, max_retries=0)(local_nvidia_smi)
    refs = [
        task.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False)
        ).remote()
        for node in nodes
    ]
    deadline = time.monotonic() + timeout
    answers = []
    for node, ref in zip(nodes, refs, strict=True):
        try:
            answers.append(str(ray.get(ref, timeout=max(0.1, deadline - time.monotonic()))))
        except Exception as exc:  # busy GPUs (timeout), a dead node: the local call decides
            log.info("nvidia-smi on Ray node %s failed: %s", node.node_id, exc)
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            answers.append("")
    return answers


def detect_gpus(
    nodes: list[GpuNode],
    on_nodes: Callable[[list[GpuNode]], list[str]],
    locally: Callable[[], str] = local_nvidia_smi,
) -> list[GpuInfo]:
    """The GPUs of the pool: ``nvidia-smi`` on each GPU node, else on this machine.

    Args:
        nodes: The cluster's GPU nodes (``gpu_nodes``).
        on_nodes: Runs ``nvidia-smi`` on each node (``nvidia_smi_on_nodes``:
            Ray tasks with one GPU); one answer per node, "" for none.
        locally: Runs it on this machine; asked when no node answered.
    """
    found: list[GpuInfo] = []
    if nodes:
        for answer in on_nodes(nodes):
            found += parse_nvidia_smi(answer)
    return found or parse_nvidia_smi(locally())


def _version(package: str) -> str:
    for name in (package, f"{package}-cpu"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return ""


def detect_capabilities(ray: Any, memory_fraction: float | None = None) -> PoolCapabilities:
    """What the Ray cluster this process joined offers: its GPUs, or the CPU.

    GPU name, memory and driver come from ``detect_gpus``; where GPUs differ,
    the smallest one's memory counts. ``memory_bytes`` is the largest model one
    engine can hold: the memory vLLM may use (``memory_fraction``, default
    vLLM's 0.92) on the largest tensor-parallel size (1, 2, 4 or 8) that fits
    the biggest node.
    """
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    nodes = max(1, sum(1 for n in ray.nodes() if n.get("Alive")))
    if gpus:
        with_gpus = gpu_nodes(ray)
        found = detect_gpus(with_gpus, lambda nodes: nvidia_smi_on_nodes(ray, nodes))
        if found:
            smallest = min(found, key=lambda g: g.memory_bytes)
            per_node = with_gpus[0].gpus if with_gpus else gpus
            widest = max(k for k in TP_SIZES if k <= per_node)
            utilisation = memory_fraction or DEFAULT_GPU_UTILISATION
            return PoolCapabilities(
                device="cuda",
                gpus=gpus,
                gpu_name=smallest.name[:200],
                memory_bytes_per_gpu=smallest.memory_bytes,
                total_memory_bytes=smallest.memory_bytes * gpus,
                memory_bytes=int(smallest.memory_bytes * widest * utilisation),
                engines=gpus,
                vllm=_version("vllm"),
                dtype="auto",
                driver=smallest.driver[:50],
                ray_nodes=nodes,
                gpus_per_node=per_node,
            )
    memory = int(resources.get("memory", 0)) or os.sysconf("SC_PAGE_SIZE") * os.sysconf(
        "SC_PHYS_PAGES"
    )
    return PoolCapabilities(
        device="cpu",
        total_memory_bytes=memory,
        memory_bytes=memory,
        engines=1,
        vllm=_version("vllm"),
        dtype="auto",
        ray_nodes=nodes,
    )


def plan_gpus(
    capabilities: PoolCapabilities,
    memory_fraction: float | None = None,
    heads_of: Callable[[ModelSource], tuple[int, int]] = model_attention_heads,
) -> GpusFor:
    """The agent's ``gpus_for``: the tensor-parallel size for a lease's model on this pool.

    One GPU when the job's estimate fits one (the model's config is not read
    then); otherwise ``parallel.tensor_parallel_size`` with the heads from the
    model's ``config.json``, read once per model.
    """
    usable = capabilities.memory_bytes_per_gpu * (memory_fraction or DEFAULT_GPU_UTILISATION)
    heads: dict[tuple[str, str | None], tuple[int, int]] = {}

    def gpus_for(lease: ShardLease) -> int:
        if capabilities.device != "cuda" or (lease.memory_bytes or 0) <= usable:
            return 1
        key = (lease.model.target, lease.model.revision)
        if key not in heads:
            heads[key] = heads_of(lease.model)
        attention, kv = heads[key]
        return tensor_parallel_size(
            lease.memory_bytes,
            attention,
            capabilities.memory_bytes_per_gpu,
            capabilities.gpus_per_node or capabilities.gpus,
            memory_fraction or DEFAULT_GPU_UTILISATION,
            kv,
        )

    return gpus_for


def _stand_in_capabilities() -> PoolCapabilities:
    """A CPU pool of one engine with this machine's memory (the stand-in engine's pool)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return PoolCapabilities(
        device="cpu", total_memory_bytes=memory, memory_bytes=memory, engines=1, vllm="none"
    )


def engine_factory(
    memory_fraction: float | None = None,
    stand_in_seconds: float | None = None,
    stand_in_variant: int = 0,
) -> EngineFactory:
    """How every Sabha pool (``sabha worker run`` and ``sabha eval``) builds its engines.

    One ``EngineClient`` (a vLLM actor, on the placement's GPUs) per engine
    slot; with ``stand_in_seconds`` (tests and benchmarks only), a
    ``StandInEngine`` answering after that many seconds per item, whose
    answers drift by ``stand_in_variant`` as another honest setup's would.
    """

    def build(
        model: ModelSource, max_model_len: int, slot: int, placement: EnginePlacement
    ) -> Engine:
        if stand_in_seconds is not None:
            from .standin import StandInEngine

            return StandInEngine(stand_in_seconds, variant=stand_in_variant)
        from .client import EngineClient

        engine: Engine = EngineClient(
            model,
            max_model_len,
            memory_fraction,
            tensor_parallel_size=placement.tensor_parallel_size,
            node=placement.node,
        )
        return engine

    return build


def run_volunteer(
    server: str,
    client_id: str,
    client_secret: str,
    pool_name: str,
    spool_dir: Path,
    ray_address: str | None = None,
    memory_fraction: float | None = None,
    exit_when_idle: bool = False,
    stand_in_seconds: float | None = None,
    report: Callable[[str], None] | None = None,
    stand_in_variant: int = 0,
    idle_seconds: float = AgentOptions.idle_seconds,
) -> AgentSummary:
    """Run the agent until Ctrl-C (or, with ``exit_when_idle``, until there is no work).

    ``stand_in_seconds`` (tests and benchmarks only, never production) runs
    the agent without Ray or vLLM: one ``StandInEngine`` answering after that
    many seconds per item (``workers/standin.py``); ``stand_in_variant``
    makes its answers drift as another honest setup's would. ``report`` is
    told each step (the CLI prints it). ``idle_seconds``: with
    ``exit_when_idle``, how long without work before it stops (the demo,
    whose work is all queued before its agents start, stops at once).
    """
    nodes: list[Any] = []
    if stand_in_seconds is not None:
        capabilities = _stand_in_capabilities()
    else:
        from .local import ensure_ray

        ray = ensure_ray(ray_address)
        capabilities = detect_capabilities(ray, memory_fraction)
        nodes = gpu_nodes(ray) if capabilities.device == "cuda" else []
    agent = Agent(
        HttpPlatformClient(server, client_id, client_secret),
        engine_factory(memory_fraction, stand_in_seconds, stand_in_variant),
        Spool(spool_dir),
        AgentOptions(
            pool_name=pool_name,
            engines=capabilities.engines,
            gpus_per_node=tuple((node.address or None, node.gpus) for node in nodes),
            poll_seconds=2.0 if exit_when_idle else 10.0,
            exit_when_idle=exit_when_idle,
            idle_seconds=idle_seconds,
            post_linger_seconds=1.0,
        ),
        capabilities,
        plan_gpus(capabilities, memory_fraction),
        report,
    )
    return agent.run()
