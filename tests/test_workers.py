"""Worker-side pieces that need no engine: tiny models and engine options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sabha.workers.engine import engine_options
from sabha.workers.tiny_models import SIMPLE_CHAT_TEMPLATE, make_tiny_model

TEXTS = ["गेहूं की बुवाई कब करें?", "Panda mahindi lini?", "நெல் சாகுபடி எப்போது?"] * 30


def test_hub_models_load_at_their_pinned_revision() -> None:
    options = engine_options("org/model", revision="a" * 40)
    assert options["model"] == "org/model"
    assert options["revision"] == options["tokenizer_revision"] == "a" * 40
    assert "revision" not in engine_options("/models/local")


def test_tiny_model_is_a_loadable_llama_with_head_dim_64(tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    folder = make_tiny_model(tmp_path / "tiny", TEXTS, seed=3, chat_template=SIMPLE_CHAT_TEMPLATE)
    config = AutoConfig.from_pretrained(folder)
    assert config.architectures == ["LlamaForCausalLM"]
    assert config.hidden_size // config.num_attention_heads == config.head_dim == 64
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert config.vocab_size == len(tokenizer)
    ids = tokenizer("गेहूं की बुवाई")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "गेहूं की बुवाई"
    assert tokenizer.chat_template == SIMPLE_CHAT_TEMPLATE
    assert json.loads((folder / "sabha_tiny.json").read_text())["smoke_test"] is True


def test_tiny_model_weights_depend_on_the_seed(tmp_path: Path) -> None:
    a = make_tiny_model(tmp_path / "a", TEXTS, seed=1)
    b = make_tiny_model(tmp_path / "b", TEXTS, seed=1)
    c = make_tiny_model(tmp_path / "c", TEXTS, seed=2)
    weights = [(p / "model.safetensors").read_bytes() for p in (a, b, c)]
    assert weights[0] == weights[1] != weights[2]
    assert not (a / "chat_template.jinja").exists()


def test_tiny_model_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError):
        make_tiny_model(tmp_path / "taken", TEXTS)
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_a_missing_extra_is_a_prerequisite_error_naming_the_extra_to_install() -> None:
    from sabha.platform.errors import PrerequisiteError
    from sabha.workers.engine import require_extra

    with pytest.raises(PrerequisiteError) as missing:
        require_extra("sabha_no_such_engine")
    assert "'sabha_no_such_engine', which is not installed" in missing.value.message
    assert "pip install -e '.[cpu]'" in (missing.value.hint or "")
