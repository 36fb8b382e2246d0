"""GPU throughput of Sabha's engine client against one raw `vllm.LLM.generate` call.

Builds a random-weight model of a real architecture (a 1B Llama: hidden 2048,
16 layers, 32 heads of 64, 8 KV heads, intermediate 8192, vocabulary 32,000)
with a word-level tokenizer whose every word is one token, so each prompt is
exactly `--input-len` tokens; nothing is downloaded. Every answer is exactly
`--output-len` tokens (`ignore_eos`). Both engines share the GPU (each takes
`--memory-fraction` of it), are warmed up with one full-size pass, then run
in alternating rounds; the script prints the median tokens/s of each and the
median ratio.

Usage (on a CUDA machine, from the repository root):
    .venv/bin/python benchmarks/gpu_throughput.py
    .venv/bin/python benchmarks/gpu_throughput.py --tiny   # smoke run on CPU
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from pathlib import Path

from settings_changed import announce
from throughput_vs_raw_vllm import Shard, engine_client_side, measure, raw_vllm_side, report

from sabha.platform.wire import DecodingParams, GenerationRequest, LocalModelSource

LLAMA_1B = {
    "hidden_size": 2048,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 8192,
    "vocab_size": 32000,
}
# Head dim 64 as in the 1B model (the CPU attention kernel needs at least 64).
TINY = {
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 256,
    "vocab_size": 2000,
}
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]


def make_random_llama(destination: Path, shape: dict[str, int], seed: int = 0) -> Path:
    """Write a Llama model folder with random bfloat16 weights and a word-level tokenizer.

    The vocabulary is the special tokens plus the words ``w4`` … ``w{vocab-1}``;
    a text of N such words separated by spaces is exactly N tokens.
    """
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    vocab.update({f"w{i}": i for i in range(len(SPECIAL_TOKENS), shape["vocab_size"])})
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    config = LlamaConfig(
        **shape,
        head_dim=shape["hidden_size"] // shape["num_attention_heads"],
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=False,
        dtype="bfloat16",
    )
    with torch.device("meta"):
        names = {name: p.shape for name, p in LlamaForCausalLM(config).named_parameters()}
    generator = torch.Generator().manual_seed(seed)
    weights = {
        name: torch.ones(size, dtype=torch.bfloat16)
        if name.endswith("norm.weight")
        else (torch.randn(size, generator=generator) * 0.02).to(torch.bfloat16)
        for name, size in names.items()
    }
    destination.mkdir(parents=True)
    save_file(weights, destination / "model.safetensors", metadata={"format": "pt"})
    config.architectures = ["LlamaForCausalLM"]
    config.save_pretrained(destination)
    fast.save_pretrained(destination)
    (destination / "sabha_random.json").write_text(json.dumps({"seed": seed, **shape}) + "\n")
    return destination


def make_shards(
    vocab_size: int, prompts: int, input_len: int, output_len: int, shard_size: int, seed: int = 0
) -> tuple[list[Shard], list[str]]:
    """Prompts of ``input_len`` random words (one token each), cut into shards."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(len(SPECIAL_TOKENS), vocab_size)]
    texts = [" ".join(rng.choices(words, k=input_len)) for _ in range(prompts)]
    decoding = DecodingParams(max_tokens=output_len, ignore_eos=True)
    requests = [GenerationRequest(item_id=i, text=text) for i, text in enumerate(texts)]
    shards: list[Shard] = [
        (start, requests[start : start + shard_size], decoding, "never")
        for start in range(0, len(requests), shard_size)
    ]
    return shards, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="A tiny model, for a CPU smoke run.")
    parser.add_argument("--prompts", type=int, help="Default: 2048 (--tiny: 128).")
    parser.add_argument("--input-len", type=int, help="Default: 512 (--tiny: 64).")
    parser.add_argument("--output-len", type=int, help="Default: 128 (--tiny: 16).")
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--max-in-flight", type=int, help="Default: twice the engine's max_num_seqs."
    )
    parser.add_argument(
        "--memory-fraction",
        type=float,
        help="Share of the GPU each engine takes (two run side by side). Default: 0.4 "
        "(--tiny on CPU: Sabha's CPU default).",
    )
    args = parser.parse_args()
    announce({})
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    prompts = args.prompts or (128 if args.tiny else 2048)
    input_len = args.input_len or (64 if args.tiny else 512)
    output_len = args.output_len or (16 if args.tiny else 128)
    memory_fraction = args.memory_fraction or (None if args.tiny else 0.4)
    shape = TINY if args.tiny else LLAMA_1B

    import vllm

    from sabha.workers.client import EngineClient
    from sabha.workers.local import ensure_ray, shutdown_ray

    with tempfile.TemporaryDirectory(prefix="sabha-gpu-throughput-") as folder:
        model = make_random_llama(Path(folder) / "model", shape)
        shards, texts = make_shards(
            shape["vocab_size"], prompts, input_len, output_len, args.shard_size
        )
        ensure_ray()
        client = EngineClient(
            LocalModelSource(name="random-llama", source="local", path=str(model)),
            max_model_len=input_len + output_len + 16,
            memory_fraction=memory_fraction,
        )
        info = client.info()
        max_in_flight = args.max_in_flight or 2 * (info.max_num_seqs or 128)
        sides = {
            "raw vllm.LLM.generate": raw_vllm_side(model, texts, shards[0][2], memory_fraction),
            f"sabha engine, shards of {args.shard_size}": engine_client_side(client, max_in_flight),
        }
        rates = measure(sides, shards, args.rounds)
        client.close()
        shutdown_ray()

    print(
        f"model: random Llama {json.dumps(shape)}, prompts: {prompts} x {input_len} tokens "
        f"in, {output_len} out (ignore_eos); vllm {vllm.__version__}, device {info.device}, "
        f"dtype {info.dtype}, max_num_seqs {info.max_num_seqs}, max_in_flight {max_in_flight}, "
        f"{args.rounds} rounds after one warm-up pass"
    )
    report(rates)


if __name__ == "__main__":
    main()
