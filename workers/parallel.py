"""How many GPUs of one node an engine needs: the tensor-parallel size of a model.

A model too large for one GPU is split across ``k`` GPUs of one node with
vLLM's tensor parallelism. ``tensor_parallel_size`` picks the smallest ``k``
in ``TP_SIZES`` that

- is at most the GPUs of the pool's biggest node (tensor parallelism across
  nodes is too slow over ordinary networks, so it is never planned);
- divides the model's attention heads (vLLM splits heads evenly; the
  key/value heads must divide ``k`` or be divisible by it);
- gives enough memory: ``k × memory per GPU × utilisation ≥ the job's need``
  (the platform's estimate, ``ShardLease.memory_bytes``).

``model_attention_heads`` reads the heads from the model's ``config.json``
(a local folder, or the hub at the lease's pinned commit).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sabha.platform.errors import SabhaError
from sabha.platform.wire import LocalModelSource, ModelSource

__all__ = [
    "DEFAULT_GPU_UTILISATION",
    "TP_SIZES",
    "NoTensorParallelFits",
    "attention_heads",
    "model_attention_heads",
    "tensor_parallel_size",
]

TP_SIZES = (1, 2, 4, 8)
# vLLM 0.32's default share of GPU memory (``gpu_memory_utilization``).
DEFAULT_GPU_UTILISATION = 0.92


class NoTensorParallelFits(SabhaError):
    """No tensor-parallel size lets the model run on one node of this pool."""


def _gb(size: int) -> str:
    return f"{size / 1e9:.1f} GB"


def _positive(config: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = config.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def attention_heads(config: dict[str, Any], where: str = "config.json") -> tuple[int, int]:
    """``(attention heads, key/value heads)`` of a Hugging Face model config.

    Multimodal configs keep the language model's sizes in ``text_config``.

    Raises:
        SabhaError: the config names no attention heads.
    """
    nested = config.get("text_config")
    text = {**config, **nested} if isinstance(nested, dict) else config
    heads = _positive(text, "num_attention_heads", "n_head", "num_heads")
    if heads is None:
        raise SabhaError(
            f"The model's {where} has no positive whole number for num_attention_heads.",
            "Give a Hugging Face model whose config.json names num_attention_heads.",
        )
    return heads, _positive(text, "num_key_value_heads", "num_kv_heads") or heads


def model_attention_heads(model: ModelSource) -> tuple[int, int]:
    """``(attention heads, key/value heads)`` of the model a lease names.

    Reads ``config.json`` from the local folder, or from the hub at the pinned
    revision (``huggingface_hub`` caches it; vLLM fetches the same file).

    Raises:
        SabhaError: the config cannot be read or names no heads.
    """
    if isinstance(model, LocalModelSource):
        config_file = Path(model.path) / "config.json"
    else:
        from huggingface_hub import hf_hub_download

        try:
            config_file = Path(
                hf_hub_download(
                    repo_id=model.repo_id, filename="config.json", revision=model.revision
                )
            )
        except Exception as exc:  # the hub client raises many kinds; all mean "not readable"
            raise SabhaError(
                f"Could not read config.json of {model.repo_id} at {model.revision}: "
                f"{' '.join(str(exc).split())[:300] or type(exc).__name__}",
                "Check that this machine can reach the Hugging Face hub.",
            ) from exc
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SabhaError(
            f"{config_file} cannot be read as JSON ({exc}).",
            "Give a complete Hugging Face model folder.",
        ) from exc
    if not isinstance(config, dict):
        raise SabhaError(f"{config_file} is not a JSON object.", "Fix or replace it.")
    return attention_heads(config, str(config_file))


def _splits_heads(k: int, heads: int, kv_heads: int) -> bool:
    return heads % k == 0 and (kv_heads % k == 0 or k % kv_heads == 0)


def tensor_parallel_size(
    memory_needed: int | None,
    heads: int,
    memory_bytes_per_gpu: int,
    gpus_on_node: int,
    utilisation: float = DEFAULT_GPU_UTILISATION,
    kv_heads: int | None = None,
) -> int:
    """The smallest tensor-parallel size that holds the model on one node.

    Args:
        memory_needed: The job's memory estimate in bytes; None (not
            estimated) or 0: one GPU.
        heads: The model's attention heads.
        memory_bytes_per_gpu: Memory of one GPU of the pool.
        gpus_on_node: GPUs of the pool's biggest node.
        utilisation: Share of each GPU's memory vLLM may take.
        kv_heads: The model's key/value heads (default: ``heads``).

    Returns:
        ``k`` in ``TP_SIZES``.

    Raises:
        NoTensorParallelFits: no ``k`` fits; the message says why.
    """
    kv_heads = kv_heads or heads
    if heads < 1 or gpus_on_node < 1:
        raise NoTensorParallelFits(
            f"Cannot split a model with {heads} attention heads over {gpus_on_node} GPUs.",
            "Run the agent on a Ray cluster with GPUs, or lease only models that fit one engine.",
        )
    usable = memory_bytes_per_gpu * utilisation
    need = memory_needed or 0
    for k in TP_SIZES:
        if k > gpus_on_node:
            break
        if _splits_heads(k, heads, kv_heads) and k * usable >= need:
            return k
    possible = [k for k in TP_SIZES if k <= gpus_on_node and _splits_heads(k, heads, kv_heads)]
    largest = max(possible, default=1)
    raise NoTensorParallelFits(
        f"The model needs about {_gb(need)}; the most this pool can give it is "
        f"{_gb(int(largest * usable))} on {largest} GPU(s) of {_gb(memory_bytes_per_gpu)} "
        f"at {utilisation:.0%} utilisation (tensor-parallel sizes {', '.join(map(str, TP_SIZES))} "
        f"up to {gpus_on_node} GPU(s) of one node that divide its {heads} attention heads "
        f"and {kv_heads} key/value heads).",
        "Leave this shard to a pool with more GPU memory on one node, or let vLLM take "
        "more of each GPU (SABHA_VLLM_MEMORY_FRACTION).",
    )
