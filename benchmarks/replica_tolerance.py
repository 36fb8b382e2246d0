"""How far honest replicas drift, and whether the tolerance tells them from forgeries.

Measures what ``docs/verification.md`` rests on. A tiny Llama is trained for
a minute on the kisan-advisory texts (so its greedy choices are confident,
as a real model's are, not the coin flips of random weights), then answers
the benchmark's test questions with real vLLM on CPU under several honest
setups that really differ:

- ``float32``, the whole batch at once (the reference run);
- ``bfloat16`` (another dtype);
- ``one thread`` (``OMP_NUM_THREADS=1`` and one torch thread);
- ``batch of 1`` (``max_num_seqs=1``: every prompt alone);

and three forgeries: ``garbage`` (one fixed sentence), ``references`` (the
public references copied), and ``another model`` (the same recipe trained
with another seed and data order). Every run is cut into shards of
``--shard-size`` items and compared with the reference run by
``verification.compare_runs`` under the shipped thresholds; the script
prints, per setup, how many shards agree, the lowest share of similar items
and the largest shard chrF difference.

Usage:
    .venv/bin/python benchmarks/replica_tolerance.py [--shard-size 16] [--steps 400]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from settings_changed import announce

MAX_TOKENS = 48


def _texts() -> tuple[list[str], list[str], list[str]]:
    """Tokenizer texts, rendered test prompts and their references (kisan-advisory)."""
    from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths

    source = load_benchmark_file(next(p for p in starter_benchmark_paths() if "kisan" in p.name))
    spec = source.spec
    texts = [t for item in source.items for t in (*item.input.values(), item.reference or "")]
    tests = [item for item in source.items if item.split == "test"]
    prompts = [spec.prompt.template.format(**item.input) for item in tests]
    return texts, prompts, [item.reference or "" for item in tests]


def train_model(folder: Path, texts: list[str], prompts: list[str], seed: int, steps: int) -> Path:
    """A tiny Llama made by ``make_tiny_model``, then trained to answer each prompt.

    Its "answer" to a prompt is the text of another prompt, paired by ``seed``:
    confident, as a real model's greedy choices are, and never the reference
    (a model that learnt the references would look like a copy of them).
    """
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from sabha.workers.tiny_models import make_tiny_model

    path = make_tiny_model(folder, texts, seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
    torch.manual_seed(seed)
    n = len(prompts)
    shift = 1 + seed * 7 % (n - 1)
    corpus = [
        f"{prompt} {prompts[(i + shift) % n].split(chr(10))[0]}" for i, prompt in enumerate(prompts)
    ]
    encoded = [tokenizer(t + tokenizer.eos_token)["input_ids"][:96] for t in corpus]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        batch = [encoded[i] for i in torch.randint(len(encoded), (16,)).tolist()]
        width = max(len(b) for b in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens)] = torch.tensor(tokens)
            labels[row, : len(tokens)] = torch.tensor(tokens)
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 100 == 0:
            print(f"  seed {seed} step {step}: loss {loss.item():.2f}", flush=True)
    model.save_pretrained(path, safe_serialization=True)
    return path


def generate(model: Path, prompts: list[str], setup: dict[str, Any], out: Path) -> None:
    """One vLLM run in a fresh process (each setup needs its own engine)."""
    env = {**os.environ, **setup.get("env", {})}
    args = {"model": str(model), "prompts": prompts, "options": setup.get("options", {})}
    source = (
        "import json, sys\n"
        "args = json.loads(open(sys.argv[1]).read())\n"
        "if __name__ == '__main__':\n"
        "    import torch\n"
        "    threads = args['options'].pop('torch_threads', None)\n"
        "    if threads: torch.set_num_threads(threads)\n"
        "    from vllm import LLM, SamplingParams\n"
        "    llm = LLM(model=args['model'], enforce_eager=True, max_model_len=512,\n"
        "              gpu_memory_utilization=0.15, seed=0, **args['options'])\n"
        f"    params = SamplingParams(temperature=0.0, max_tokens={MAX_TOKENS})\n"
        "    outs = llm.generate(args['prompts'], params, use_tqdm=False)\n"
        "    open(sys.argv[2], 'w').write(json.dumps([o.outputs[0].text for o in outs]))\n"
    )
    request = out.with_suffix(".args.json")
    request.write_text(json.dumps(args), encoding="utf-8")
    script = out.with_suffix(".py")
    script.write_text(source, encoding="utf-8")
    subprocess.run(
        [sys.executable, str(script), str(request), str(out)],
        env=env,
        check=True,
        capture_output=True,
    )


def compare(
    base: list[str], other: list[str], references: list[str], shard_size: int
) -> dict[str, Any]:
    from sabha.platform.services.verification import RunOutputs, VerificationPolicy, compare_runs

    policy = VerificationPolicy()
    agreeing, shares, deltas = 0, [], []
    shards = range(0, len(base), shard_size)
    for start in shards:
        ids = range(start, min(start + shard_size, len(base)))
        result = compare_runs(
            RunOutputs({i: (base[i], None) for i in ids}, {}),
            RunOutputs({i: (other[i], None) for i in ids}, {}),
            {i: references[i] for i in ids},
            policy,
        )
        agreeing += result.agree
        shares.append(result.item_share)
        deltas.append(result.score_delta)
    identical = sum(a == b for a, b in zip(base, other, strict=True))
    return {
        "shards": len(shards),
        "agree": agreeing,
        "identical items": f"{identical}/{len(base)}",
        "lowest similar share": min(shares),
        "largest chrF delta": max(deltas),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    started = time.monotonic()
    announce({})
    texts, prompts, references = _texts()
    with tempfile.TemporaryDirectory(prefix="sabha-tolerance-") as tmp:
        work = Path(tmp)
        print("training two tiny models (the evaluated one and 'another model')...")
        model = train_model(work / "model", texts, prompts, seed=1, steps=args.steps)
        another = train_model(work / "another", texts, prompts, seed=2, steps=args.steps)
        setups: dict[str, tuple[Path, dict[str, Any]]] = {
            "float32 (reference)": (model, {"options": {"dtype": "float32"}}),
            "bfloat16": (model, {"options": {"dtype": "bfloat16"}}),
            "one thread": (
                model,
                {
                    "options": {"dtype": "float32", "torch_threads": 1},
                    "env": {"OMP_NUM_THREADS": "1"},
                },
            ),
            "batch of 1": (model, {"options": {"dtype": "float32", "max_num_seqs": 1}}),
            "another model": (another, {"options": {"dtype": "float32"}}),
        }
        answers: dict[str, list[str]] = {}
        for name, (path, setup) in setups.items():
            print(f"generating: {name}...", flush=True)
            out = work / f"{name.split()[0]}-{len(answers)}.json"
            generate(path, prompts, setup, out)
            answers[name] = json.loads(out.read_text(encoding="utf-8"))
    answers["garbage"] = ["Maji mengi sana kwa kila shamba."] * len(prompts)
    answers["references (copied)"] = list(references)
    base = answers["float32 (reference)"]
    print(
        f"\n{len(prompts)} test prompts, {MAX_TOKENS} new tokens, shards of {args.shard_size}; "
        "compared with the float32 run under the shipped thresholds "
        "(item chrF >= 50 for 60% of items, shard chrF within 5 points)\n"
    )
    header = ("setup", "honest", "agree", "identical", "low share", "max delta")
    print("{:22} {:7} {:>9} {:>10} {:>10} {:>10}".format(*header))
    for name, texts_ in answers.items():
        if name == "float32 (reference)":
            continue
        row = compare(base, texts_, references, args.shard_size)
        honest = name in ("bfloat16", "one thread", "batch of 1")
        print(
            f"{name:22} {'yes' if honest else 'no':7} {row['agree']:>4}/{row['shards']:<4} "
            f"{row['identical items']:>10} {row['lowest similar share']:>10.2f} "
            f"{row['largest chrF delta']:>10.2f}"
        )
    print(f"\ntook {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
