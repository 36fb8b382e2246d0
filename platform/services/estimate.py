"""How much accelerator memory a model needs, and whether a pool the platform knows has it.

The estimate is read from the model's ``config.json`` alone (no weights are
downloaded):

    total = weights + kv_cache + overhead
    weights  = parameters × weight bytes (from ``torch_dtype``/``dtype``)
    kv_cache = max_model_len × layers × 2 (K and V) × kv_heads × head_dim
               × 2 bytes (16-bit cache) × KV_SEQUENCES
    overhead = OVERHEAD_BYTES (CUDA context, activations, sampler buffers)

``parameters`` counts a decoder-only transformer: token embeddings
(vocab × hidden), an output head unless ``tie_word_embeddings``, and per
layer the attention projections (q and o: hidden × heads × head_dim each; k
and v: hidden × kv_heads × head_dim each), the MLP (3 × hidden × intermediate
when gated, as Llama, Mistral, Qwen and Gemma are; else 2 ×) and two norms.
vLLM serves float32 checkpoints in 16 bits ("auto" dtype), so 32-bit weights
count 2 bytes. ``KV_SEQUENCES`` full-length sequences must fit at once so
batches make progress; vLLM needs room for at least one to start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from sabha.platform.domain import Pool, PoolKind, PoolStatus
from sabha.platform.errors import SabhaError

__all__ = [
    "KV_SEQUENCES",
    "OVERHEAD_BYTES",
    "MemoryEstimate",
    "ModelTooLarge",
    "PoolSize",
    "check_fits",
    "detect_local_memory_bytes",
    "estimate_memory",
    "format_gb",
    "known_pool_sizes",
    "parameter_count",
    "read_hub_config",
    "read_local_config",
]

# The most memory one engine of a pool is believed to have: eight GPUs of 288 GB
# (the largest one node held in 2026), whatever a pool reports.
MAX_ENGINE_BYTES = 8 * 288 * 10**9

KV_SEQUENCES = 4
OVERHEAD_BYTES = 1_000_000_000
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_NOT_GATED = {"gpt2", "gpt_neox", "gptj", "opt", "bloom", "falcon", "phi", "starcoder2"}
_DTYPE_BYTES = {
    "float32": 2,  # served in 16 bits by vLLM's "auto" dtype
    "float": 2,
    "float16": 2,
    "half": 2,
    "bfloat16": 2,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "int8": 1,
    "uint8": 1,
}


class ModelTooLarge(SabhaError):
    """The model needs more memory than any pool the platform knows has."""

    http_status = 422
    problem_type = "model-too-large"


@dataclass(frozen=True)
class MemoryEstimate:
    """A model's memory need in bytes, part by part."""

    parameters: int
    weight_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int

    @property
    def total_bytes(self) -> int:
        """Weights, KV cache and overhead together."""
        return self.weight_bytes + self.kv_cache_bytes + self.overhead_bytes


@dataclass(frozen=True)
class PoolSize:
    """A pool and the memory one of its engines can use."""

    name: str
    memory_bytes: int


def format_gb(size: int) -> str:
    """``17.2 GB`` (decimal gigabytes, one decimal)."""
    return f"{size / 1e9:.1f} GB"


def _config_error(where: str, problem: str) -> SabhaError:
    return SabhaError(
        f"The model's config.json ({where}) {problem}.",
        "Give a Hugging Face model whose config.json names its sizes "
        "(hidden_size, num_hidden_layers, num_attention_heads, vocab_size).",
    )


def read_local_config(path: Path) -> dict[str, Any]:
    """The ``config.json`` of a local model folder.

    Raises:
        SabhaError: the file is missing or not a JSON object.
    """
    config_file = path / "config.json"
    if not config_file.is_file():
        raise SabhaError(
            f"{path} holds no config.json.",
            "Give the folder that holds config.json, the weights and the tokenizer.",
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SabhaError(
            f"{config_file} cannot be read as JSON ({exc}).", "Fix or replace it."
        ) from exc
    if not isinstance(config, dict):
        raise _config_error(str(config_file), "is not a JSON object")
    return config


def read_hub_config(repo_id: str, revision: str) -> dict[str, Any]:
    """The ``config.json`` of a hub repository at a full commit SHA.

    Raises:
        SabhaError: the revision is not a full SHA, or the file cannot be fetched.
    """
    if not _COMMIT.match(revision):
        raise SabhaError(
            f"Revision {revision!r} of {repo_id} is not a full 40-character commit SHA.",
            "Pin the model to a commit: copy its full hash from the repository's history.",
        )
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo_id=repo_id, filename="config.json", revision=revision)
    except Exception as exc:  # the hub client raises many kinds; all mean "not readable"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SabhaError(
            f"Could not read config.json of {repo_id} at {revision}: {reason[:300]}",
            "Check the repository name and the commit, that the repository is public, "
            "and that the server can reach the hub.",
        ) from exc
    return read_local_config(Path(path).parent)


def _number(config: dict[str, Any], *names: str, default: int | None = None) -> int:
    for name in names:
        value = config.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    if default is not None:
        return default
    raise _config_error(names[0], f"has no positive whole number for {' or '.join(names)}")


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    nested = config.get("text_config")
    return {**config, **nested} if isinstance(nested, dict) else config


def parameter_count(config: dict[str, Any]) -> int:
    """The parameters of a decoder-only transformer described by ``config`` (see module doc)."""
    config = _text_config(config)
    hidden = _number(config, "hidden_size", "n_embd", "d_model")
    layers = _number(config, "num_hidden_layers", "n_layer", "num_layers")
    heads = _number(config, "num_attention_heads", "n_head")
    vocab = _number(config, "vocab_size")
    kv_heads = _number(config, "num_key_value_heads", "num_kv_heads", default=heads)
    head_dim = _number(config, "head_dim", default=hidden // heads)
    intermediate = _number(config, "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden)
    gated = str(config.get("model_type", "")) not in _NOT_GATED
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    mlp = (3 if gated else 2) * hidden * intermediate
    per_layer = attention + mlp + 2 * hidden
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return embeddings + layers * per_layer + hidden


def _weight_bytes(config: dict[str, Any]) -> int:
    quantization = config.get("quantization_config")
    if isinstance(quantization, dict) and isinstance(quantization.get("bits"), int):
        return max(1, quantization["bits"] // 8)
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    return _DTYPE_BYTES.get(dtype.removeprefix("torch."), 2)


def estimate_memory(config: dict[str, Any], max_model_len: int) -> MemoryEstimate:
    """Estimate the memory an engine needs to serve the model at ``max_model_len`` tokens.

    Raises:
        SabhaError: the config lacks a size the estimate needs.
    """
    parameters = parameter_count(config)
    text = _text_config(config)
    layers = _number(text, "num_hidden_layers", "n_layer", "num_layers")
    heads = _number(text, "num_attention_heads", "n_head")
    kv_heads = _number(text, "num_key_value_heads", "num_kv_heads", default=heads)
    head_dim = _number(text, "head_dim", default=_number(text, "hidden_size", "n_embd") // heads)
    kv_cache = max_model_len * layers * 2 * kv_heads * head_dim * 2 * KV_SEQUENCES
    return MemoryEstimate(
        parameters=parameters,
        weight_bytes=parameters * _weight_bytes(text),
        kv_cache_bytes=kv_cache,
        overhead_bytes=OVERHEAD_BYTES,
    )


def detect_local_memory_bytes() -> int:
    """The memory of this machine's largest GPU (``nvidia-smi``), else its total RAM.

    Torch is not imported: the web process stays light.
    """
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
            sizes = [int(line.strip()) for line in out.splitlines() if line.strip().isdigit()]
            if sizes:
                return max(sizes) * 1024 * 1024  # MiB
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def known_pool_sizes(
    session: Session, local_memory_bytes: int | None, proven_after: int = 20
) -> list[PoolSize]:
    """The memory of every pool whose word on it counts, and of the local pool.

    A pool reports its own memory, so a volunteer's pool counts only once it
    is proven (``proven_after`` verified agreements, as for its results) and
    active; what it reports is capped at ``MAX_ENGINE_BYTES``. The operator's
    own pools always count.

    Args:
        session: A database session.
        local_memory_bytes: The local pool's memory (``SABHA_LOCAL_POOL_MEMORY_GB``);
            None or 0: no local pool is counted.
        proven_after: Verified agreements a volunteer's pool needs to count
            (``SABHA_REPLICATION_NEW_POOL_SHARDS``).
    """
    sizes = []
    if local_memory_bytes:
        sizes.append(PoolSize("local", local_memory_bytes))
    for pool in session.exec(select(Pool).where(Pool.status == PoolStatus.ACTIVE)):
        if pool.kind != PoolKind.LOCAL and pool.agreements < proven_after:
            continue
        memory = (pool.capabilities or {}).get("memory_bytes")
        if isinstance(memory, int | float) and not isinstance(memory, bool) and memory > 0:
            sizes.append(PoolSize(pool.name, int(min(memory, MAX_ENGINE_BYTES))))
    return sizes


def check_fits(estimate: MemoryEstimate, pools: list[PoolSize], what: str) -> PoolSize:
    """The largest pool, which must hold the estimate.

    Raises:
        ModelTooLarge: no pool is large enough (or none is known); the message gives
            the estimate and the largest pool's size.
    """
    need = format_gb(estimate.total_bytes)
    if not pools:
        raise ModelTooLarge(
            f"{what} needs about {need}, and no pool has reported its memory yet.",
            "Wait for a pool to join, or set SABHA_LOCAL_POOL_MEMORY_GB on the server.",
        )
    largest = max(pools, key=lambda p: p.memory_bytes)
    if estimate.total_bytes > largest.memory_bytes:
        raise ModelTooLarge(
            f"{what} needs about {need} ({estimate.parameters / 1e9:.2f} B parameters: "
            f"{format_gb(estimate.weight_bytes)} of weights, "
            f"{format_gb(estimate.kv_cache_bytes)} of KV cache, "
            f"{format_gb(estimate.overhead_bytes)} overhead); "
            f"the largest pool has {format_gb(largest.memory_bytes)}.",
            "Submit a smaller or quantized model, or wait for a pool with more memory.",
        )
    return largest
