"""Tiny smoke-test models: a real tokenizer and a randomly initialised Llama.

They load in vLLM like any Hugging Face model, in seconds, so tests and the
demo exercise the real inference path without downloading weights. Their
answers are noise: the leaderboard marks them as smoke-test models.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["SIMPLE_CHAT_TEMPLATE", "make_tiny_model"]

# A minimal chat template, so one of the demo models exercises the chat path.
SIMPLE_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]


def make_tiny_model(
    destination: str | Path,
    texts: Iterable[str],
    seed: int = 0,
    vocab_size: int = 2000,
    chat_template: str | None = None,
    hidden_size: int = 128,
    num_layers: int = 2,
) -> Path:
    """Write a tiny Llama model directory that vLLM can load.

    The tokenizer is a byte-level BPE trained on ``texts``; the model has
    head_dim 64 (the CPU attention kernel rejects smaller heads) and random
    weights drawn with ``seed``. The directory appears atomically: it is built
    beside ``destination`` and renamed into place.

    Args:
        destination: Folder to create; must not exist yet.
        texts: Text to train the tokenizer on (the benchmark texts).
        seed: Seed for the random weights.
        vocab_size: Tokenizer vocabulary size.
        chat_template: Jinja chat template to store with the tokenizer, if any.
        hidden_size: Model width; the number of heads is ``hidden_size // 64``.
        num_layers: Number of transformer layers.

    Returns:
        The model directory.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    destination = Path(destination)
    if destination.exists():
        raise FileExistsError(f"{destination} already exists")
    destination.parent.mkdir(parents=True, exist_ok=True)

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    if chat_template:
        fast.chat_template = chat_template

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=hidden_size // 64,
        num_key_value_heads=hidden_size // 64,
        head_dim=64,
        max_position_embeddings=2048,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)

    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        fast.save_pretrained(staging)
        (staging / "sabha_tiny.json").write_text(
            json.dumps({"smoke_test": True, "seed": seed, "vocab_size": len(fast)}, indent=2)
            + "\n",
            encoding="utf-8",
        )
        os.chmod(staging, 0o755)
        os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination
