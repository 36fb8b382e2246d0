"""Memory estimates from config.json, and the pools a model must fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from sabha.platform.db import session_scope
from sabha.platform.errors import SabhaError
from sabha.platform.services.estimate import (
    KV_SEQUENCES,
    OVERHEAD_BYTES,
    ModelTooLarge,
    PoolSize,
    check_fits,
    estimate_memory,
    known_pool_sizes,
    parameter_count,
    read_hub_config,
    read_local_config,
)
from sabha.platform.services.pools import register_pool

# meta-llama/Llama-3.2-1B config.json (the size fields); 1,235,814,400 parameters.
LLAMA_3_2_1B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
}
# openai-community/gpt2: 124,439,808 parameters (tied head, no gated MLP, float32).
GPT2 = {
    "architectures": ["GPT2LMHeadModel"],
    "model_type": "gpt2",
    "vocab_size": 50257,
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
    "tie_word_embeddings": True,
}


def test_llama_1b_parameters_and_bytes() -> None:
    assert parameter_count(LLAMA_3_2_1B) == 1_235_814_400
    estimate = estimate_memory(LLAMA_3_2_1B, max_model_len=2048)
    assert estimate.weight_bytes == 1_235_814_400 * 2
    # 2048 tokens × 16 layers × (K and V) × 8 kv heads × 64 dims × 2 bytes × sequences
    assert estimate.kv_cache_bytes == 2048 * 16 * 2 * 8 * 64 * 2 * KV_SEQUENCES
    assert estimate.total_bytes == (
        estimate.weight_bytes + estimate.kv_cache_bytes + OVERHEAD_BYTES
    )


def test_untied_head_and_ungated_mlp_are_counted() -> None:
    untied = {**LLAMA_3_2_1B, "tie_word_embeddings": False}
    assert parameter_count(untied) - parameter_count(LLAMA_3_2_1B) == 128256 * 2048
    # GPT-2's biases and position embeddings (~0.9M) are not counted: within 1%
    assert abs(parameter_count(GPT2) - 124_439_808) / 124_439_808 < 0.01


def test_eight_bit_weights_take_one_byte() -> None:
    quantized = {**LLAMA_3_2_1B, "quantization_config": {"bits": 8}}
    assert estimate_memory(quantized, 2048).weight_bytes == parameter_count(LLAMA_3_2_1B)


def test_longer_context_needs_a_larger_kv_cache() -> None:
    short = estimate_memory(LLAMA_3_2_1B, 1024).kv_cache_bytes
    assert estimate_memory(LLAMA_3_2_1B, 4096).kv_cache_bytes == 4 * short


def test_config_without_sizes_names_the_field() -> None:
    with pytest.raises(SabhaError, match="hidden_size"):
        parameter_count({"model_type": "llama", "vocab_size": 10})


def test_local_config_is_read_and_broken_ones_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_3_2_1B), encoding="utf-8")
    assert read_local_config(tmp_path)["hidden_size"] == 2048
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SabhaError, match="cannot be read as JSON"):
        read_local_config(tmp_path)
    with pytest.raises(SabhaError, match="holds no config.json"):
        read_local_config(tmp_path / "missing")


def test_hub_config_needs_a_full_sha() -> None:
    with pytest.raises(SabhaError, match="40-character commit SHA"):
        read_hub_config("org/model", "main")


def test_hub_config_that_cannot_be_fetched_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real client in offline mode: it fails without touching the network.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(SabhaError, match="Could not read config.json of org/model at") as info:
        read_hub_config("org/model", "c" * 40)
    assert "reach the hub" in (info.value.hint or "")


def test_model_that_fits_no_pool_is_refused_with_both_sizes() -> None:
    estimate = estimate_memory(LLAMA_3_2_1B, 2048)
    pools = [PoolSize("local", 2_000_000_000), PoolSize("volunteer", 3_000_000_000)]
    with pytest.raises(ModelTooLarge) as info:
        check_fits(estimate, pools, "Model m")
    total = estimate.total_bytes / 1e9
    assert f"needs about {total:.1f} GB" in info.value.message
    assert "the largest pool has 3.0 GB" in info.value.message
    assert check_fits(estimate, [*pools, PoolSize("big", 80_000_000_000)], "m").name == "big"


def test_known_pool_sizes_read_active_pools_capabilities(db: Engine) -> None:
    register_pool(db, "gpu-pool", capabilities={"memory_bytes": 24_000_000_000})
    register_pool(db, "no-report", capabilities={})
    quarantined = register_pool(db, "bad", capabilities={"memory_bytes": 99_000_000_000})
    with session_scope(db) as session:
        from sabha.platform.domain import Pool, PoolStatus

        pool = session.get(Pool, quarantined)
        assert pool is not None
        pool.status = PoolStatus.QUARANTINED
    with session_scope(db) as session:
        sizes = known_pool_sizes(session, 8_000_000_000)
    assert sizes == [PoolSize("local", 8_000_000_000), PoolSize("gpu-pool", 24_000_000_000)]
