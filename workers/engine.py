"""A vLLM engine as a long-lived Ray actor: one per GPU, or per ``k`` GPUs of one node.

Model loading dominates the cost of a shard, so the engine stays alive across
batches and benchmarks; the caller's loop, not Ray, decides retries.

A model too large for one GPU runs with vLLM's tensor parallelism
(``tensor_parallel_size=k``, ``distributed_executor_backend="ray"``): the
engine actor is the driver and asks for no GPU itself; it is scheduled in a
Ray placement group of ``k`` one-GPU bundles with strategy ``STRICT_PACK``
(all on one node) and captures it for its children, so vLLM finds the group
(``ray.util.get_current_placement_group``, which vLLM 0.32 hands on to its
engine-core process) and starts its ``k`` GPU workers in those bundles.
``engine_actor_request`` builds that request; ``place_engine_actor`` makes it.
"""

from __future__ import annotations

import platform
import socket
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PLACEMENT_TIMEOUT_SECONDS",
    "EngineActorRequest",
    "VLLMEngine",
    "describe_host",
    "engine_actor_request",
    "engine_options",
    "gpus_per_engine",
    "place_engine_actor",
    "start_engine_actor",
]

# The CPU build of vLLM reserves this fraction of memory for its KV cache; its
# default (0.92) assumes a dedicated GPU and fails on a shared CPU machine.
CPU_MEMORY_FRACTION = 0.15
# How long a tensor-parallel engine waits for its GPUs before giving up.
PLACEMENT_TIMEOUT_SECONDS = 600.0


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"Sabha's inference needs {module!r}, which is not installed. "
            "Install the CPU extra (`pip install -e '.[cpu]'`, which `make setup` does) "
            "or, on a CUDA machine, the GPU extra (`pip install -e '.[gpu]'`)."
        ) from exc


def engine_options(
    model_path: str,
    seed: int = 0,
    max_model_len: int = 2048,
    revision: str | None = None,
    memory_fraction: float | None = None,
    tensor_parallel_size: int = 1,
) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM`` that suit this machine.

    Args:
        model_path: Local model folder or hub repository id.
        seed: Engine seed.
        max_model_len: Longest prompt plus answer, in tokens.
        revision: Pinned commit of a hub repository (weights and tokenizer).
        memory_fraction: Share of GPU memory (of CPU memory, on the CPU build)
            vLLM may take; None: vLLM's default on GPU, ``CPU_MEMORY_FRACTION`` on CPU.
        tensor_parallel_size: GPUs of one node the model is split across; above
            1, vLLM runs its workers as Ray actors in the caller's placement group.
    """
    from vllm.platforms import current_platform

    options: dict[str, Any] = {
        "model": model_path,
        "seed": seed,
        "max_model_len": max_model_len,
        # CUDA graphs speed up decoding on a GPU; on CPU, eager mode starts in
        # ~20 s instead of compiling for minutes.
        "enforce_eager": current_platform.is_cpu(),
    }
    if revision:
        options["revision"] = revision
        options["tokenizer_revision"] = revision
    if memory_fraction is None and current_platform.is_cpu():
        memory_fraction = CPU_MEMORY_FRACTION
    if memory_fraction is not None:
        options["gpu_memory_utilization"] = memory_fraction
    if tensor_parallel_size > 1:
        options["tensor_parallel_size"] = tensor_parallel_size
        options["distributed_executor_backend"] = "ray"
    return options


@dataclass(frozen=True)
class EngineActorRequest:
    """What to ask Ray for to start one engine actor.

    Attributes:
        actor_options: Keyword arguments for ``ray.remote`` (resources, restarts).
        bundles: The placement group's bundles; empty: no placement group.
        strategy: The placement group's strategy.
    """

    actor_options: dict[str, Any]
    bundles: list[dict[str, float]] = field(default_factory=list)
    strategy: str = "STRICT_PACK"


def engine_actor_request(
    tensor_parallel_size: int = 1, cluster_has_gpus: bool = False, node: str | None = None
) -> EngineActorRequest:
    """The Ray request for an engine actor of ``tensor_parallel_size`` GPUs.

    Args:
        tensor_parallel_size: GPUs the engine spans (1 on CPU).
        cluster_has_gpus: Whether the Ray cluster has GPUs (else the engine
            runs on the CPU and asks for none).
        node: A Ray node's address to pin the engine to (its ``node:<address>``
            resource); None: wherever Ray finds room.

    Raises:
        ValueError: tensor parallelism was asked for on a cluster without GPUs.
    """
    if tensor_parallel_size > 1 and not cluster_has_gpus:
        raise ValueError(
            f"tensor_parallel_size={tensor_parallel_size} needs GPUs; this Ray cluster has none."
        )
    pin = {f"node:{node}": 0.001} if node else {}
    base: dict[str, Any] = {"num_cpus": 1, "max_restarts": -1, "max_task_retries": 0}
    if tensor_parallel_size <= 1:
        options = {**base, "num_gpus": 1 if cluster_has_gpus else 0}
        if pin:
            options["resources"] = pin
        return EngineActorRequest(options)
    # The driver (bundle 0's CPU) holds no GPU; vLLM's k workers take one GPU bundle each.
    bundles: list[dict[str, float]] = [{"GPU": 1.0, "CPU": 1.0, **pin}]
    bundles += [{"GPU": 1.0} for _ in range(tensor_parallel_size - 1)]
    return EngineActorRequest({**base, "num_gpus": 0}, bundles, "STRICT_PACK")


def place_engine_actor(
    request: EngineActorRequest, timeout: float = PLACEMENT_TIMEOUT_SECONDS
) -> tuple[dict[str, Any], Any]:
    """Reserve the request's placement group and return the actor's options and the group.

    Returns:
        ``(options for ray.remote, placement group or None)``; remove the group
        (``ray.util.remove_placement_group``) when the actor is gone.

    Raises:
        TimeoutError: the GPUs did not become free on one node within ``timeout``.
    """
    ray = _require("ray")
    if not request.bundles:
        return dict(request.actor_options), None
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = placement_group(request.bundles, strategy=request.strategy)
    try:
        ray.get(group.ready(), timeout=timeout)
    except Exception as exc:
        remove_placement_group(group)
        raise TimeoutError(
            f"Ray found no node with {len(request.bundles)} free GPUs within {timeout:.0f} s"
        ) from exc
    strategy = PlacementGroupSchedulingStrategy(
        placement_group=group,
        placement_group_bundle_index=0,
        placement_group_capture_child_tasks=True,  # vLLM's workers go in the group
    )
    return {**request.actor_options, "scheduling_strategy": strategy}, group


def describe_host() -> dict[str, Any]:
    """Host, versions, device and Ray node of the current process, for provenance."""
    import torch
    import vllm

    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "vllm": vllm.__version__,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    try:
        import ray

        if ray.is_initialized():
            info["ray_node_id"] = ray.get_runtime_context().get_node_id()
            info["ray_node_ip"] = ray.util.get_node_ip_address()
            info["ray_version"] = ray.__version__
    except ImportError:
        pass
    return info


def gpus_per_engine() -> int:
    """1 when the current Ray cluster has GPUs, else 0.

    An actor that asks for no GPU gets an empty ``CUDA_VISIBLE_DEVICES``, so
    on a GPU cluster the engine must ask for one to see it.
    """
    ray = _require("ray")
    return 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; random-weight models do emit it.
    return text.replace("\x00", "\ufffd")


class VLLMEngine:
    """A loaded vLLM model that renders prompts and generates greedily.

    Args:
        model_path: Hugging Face model directory, or hub repository id.
        seed: Engine seed.
        max_model_len: Longest prompt plus answer, in tokens.
        revision: Pinned commit, for a hub repository.
        memory_fraction: See ``engine_options``.
    """

    def __init__(
        self,
        model_path: str,
        seed: int = 0,
        max_model_len: int = 2048,
        revision: str | None = None,
        memory_fraction: float | None = None,
    ) -> None:
        vllm = _require("vllm")
        self.model_path = model_path
        self.llm = vllm.LLM(
            **engine_options(model_path, seed, max_model_len, revision, memory_fraction)
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.has_chat_template = bool(getattr(self.tokenizer, "chat_template", None))

    def info(self) -> dict[str, Any]:
        """Where and with what this engine runs, for provenance."""
        return {**describe_host(), "chat_template": self.has_chat_template}

    def render_prompt(self, user_text: str, system: str | None = None) -> str:
        """The exact text fed to the model: the chat template when the model has one."""
        if not self.has_chat_template:
            return f"{system}\n\n{user_text}" if system else user_text
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": user_text})
        rendered = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return str(rendered)

    def generate(
        self, requests: list[dict[str, Any]], decoding: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Generate one answer per request, greedily with a fixed seed.

        Args:
            requests: Each has ``item_id``, ``text`` and optionally ``system`` and
                ``language`` (which picks its budget in ``max_tokens_by_language``).
            decoding: ``max_tokens``, ``temperature``, ``seed`` and optionally
                ``max_tokens_by_language``.

        Returns:
            One dict per request, in order: ``item_id``, ``prompt`` (as rendered),
            ``text``, ``finish_reason`` and ``num_tokens``.
        """
        vllm = _require("vllm")
        ceiling = int(decoding.get("max_tokens", 64))
        budgets = dict(decoding.get("max_tokens_by_language") or {})
        params = [
            vllm.SamplingParams(
                temperature=float(decoding.get("temperature", 0.0)),
                top_p=float(decoding.get("top_p", 1.0)),
                max_tokens=min(ceiling, int(budgets.get(r.get("language"), ceiling))),
                seed=int(decoding.get("seed", 0)),
            )
            for r in requests
        ]
        prompts = [self.render_prompt(r["text"], r.get("system")) for r in requests]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        results = []
        for request, prompt, output in zip(requests, prompts, outputs, strict=True):
            completion = output.outputs[0]
            results.append(
                {
                    "item_id": request["item_id"],
                    "prompt": _clean(prompt),
                    "text": _clean(completion.text),
                    "finish_reason": completion.finish_reason,
                    "num_tokens": len(completion.token_ids),
                }
            )
        return results


def start_engine_actor(
    model_path: str,
    seed: int = 0,
    max_model_len: int = 2048,
    revision: str | None = None,
    memory_fraction: float | None = None,
) -> Any:
    """Start a ``VLLMEngine`` as a Ray actor on the current Ray cluster.

    The actor restarts if its process dies, but never retries a call by
    itself: the caller records every attempt.
    """
    ray = _require("ray")

    actor_class = ray.remote(
        num_cpus=1, num_gpus=gpus_per_engine(), max_restarts=-1, max_task_retries=0
    )(VLLMEngine)
    return actor_class.remote(model_path, seed, max_model_len, revision, memory_fraction)
