"""Throughput of Sabha's engine client against one raw `vllm.LLM.generate` call.

Both sides generate the same rendered prompts (the kisan-advisory test items,
repeated) with the same tiny model and greedy decoding:

- raw: one `LLM.generate` call over all prompts, in this process;
- engine: `EngineClient.generate_shards` over shards of `--shard-size` items,
  streamed through the vLLM engine in a Ray actor;
- sabha eval: the local pool through the job queue (lease, generate, store
  each shard's outputs and per-item statistics in SQLite) and the job's
  scoring, with the same warmed-up engine;
- lm-eval (the peer, when ``make peer`` has built ``.venv-peer``):
  lm-evaluation-harness's vLLM backend in a child process
  (``lm_eval_peer.py``), one ``simple_evaluate`` per round, computing BLEU,
  chrF and TER with its default bootstrap standard errors, and again with
  exact match only.

Every engine is started and warmed up with one full-size pass first (the
first call is slow), then the sides run in alternating rounds. Each side is a
function that takes the shards and returns elapsed seconds and generated
tokens.

Usage:
    make peer   # once: lm-eval in .venv-peer, beside .venv's packages
    .venv/bin/python benchmarks/throughput_vs_raw_vllm.py [--rounds 5] [--repeat 4] [--no-peer]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from settings_changed import announce

from sabha.platform.wire import DecodingParams, GenerationRequest

# One limit for every prompt on both sides (kisan-advisory version 1's), so the
# numbers compare with earlier runs; version 2's per-language budgets would
# make the random-weight model generate far longer.
MAX_TOKENS = 48

Shard = tuple[int, list[GenerationRequest], DecodingParams, str]
# The answer each side gave to each rendered prompt (its last round): they must be equal.
ANSWERS: dict[str, dict[str, str]] = {}
# Tokens raw vLLM generated in its last round (the peer's count, its answers being equal).
RAW_TOKENS = [0]
# A way to generate: takes the shards, returns (elapsed seconds, generated tokens).
Side = Callable[[list[Shard]], tuple[float, int]]


def prepare(work: Path, repeat: int, shard_size: int) -> tuple[Path, list[Shard], list[str]]:
    """A tiny model, the shards of the kisan-advisory test items, and their rendered prompts."""
    from transformers import AutoTokenizer

    from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
    from sabha.workers.streaming import render_prompt
    from sabha.workers.tiny_models import make_tiny_model

    source = load_benchmark_file(next(p for p in starter_benchmark_paths() if "kisan" in p.name))
    texts = [t for item in source.items for t in (*item.input.values(), item.reference or "")]
    model = make_tiny_model(work / "model", texts, seed=0, chat_template=None)

    spec = source.spec
    items = [item for _ in range(repeat) for item in source.items if item.split == "test"]
    requests = [
        GenerationRequest(
            item_id=n, text=spec.prompt.template.format(**item.input), system=spec.prompt.system
        )
        for n, item in enumerate(items)
    ]
    decoding = DecodingParams(max_tokens=MAX_TOKENS)
    shards: list[Shard] = [
        (start, requests[start : start + shard_size], decoding, "auto")
        for start in range(0, len(requests), shard_size)
    ]
    tokenizer = AutoTokenizer.from_pretrained(model)
    prompts = [render_prompt(tokenizer, r, "auto") for r in requests]
    return model, shards, prompts


def references(repeat: int) -> list[str]:
    """The references of the prompts ``prepare`` renders, in the same order."""
    from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths

    source = load_benchmark_file(next(p for p in starter_benchmark_paths() if "kisan" in p.name))
    return [
        item.reference or "" for _ in range(repeat) for item in source.items if item.split == "test"
    ]


def lm_eval_sides(
    python: Path, model: Path, prompts: list[str], references: list[str], work: Path
) -> tuple[dict[str, Side], Callable[[], None]]:
    """lm-eval's vLLM backend in a child process: one side per task, and a closer.

    Its answers are checked against raw vLLM's; its tokens are counted as
    raw vLLM's for the same prompts (equal when the answers are).
    """
    import json
    import subprocess

    data = work / "peer.jsonl"
    data.write_text(
        "".join(
            json.dumps({"prompt": p, "reference": r}, ensure_ascii=False) + "\n"
            for p, r in zip(prompts, references, strict=True)
        ),
        encoding="utf-8",
    )
    child = subprocess.Popen(
        [str(python), str(Path(__file__).with_name("lm_eval_peer.py")), "--model", str(model)]
        + ["--data", str(data), "--max-tokens", str(MAX_TOKENS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def answer() -> dict[str, Any]:
        assert child.stdout is not None
        for line in child.stdout:  # vLLM's own log lines come first
            if line.startswith("{"):
                return dict(json.loads(line))
        raise RuntimeError(f"lm_eval_peer.py stopped (exit code {child.wait()})")

    answer()  # ready: the model is loaded

    def side(task: str, name: str) -> Side:
        def run(_shards: list[Shard]) -> tuple[float, int]:
            assert child.stdin is not None
            child.stdin.write(task + "\n")
            child.stdin.flush()
            result = answer()
            ANSWERS[name] = result["answers"]
            return float(result["seconds"]), RAW_TOKENS[0]

        return run

    def close() -> None:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=120)

    names = {
        "lm-eval vllm, BLEU/chrF/TER": "same-metrics",
        "lm-eval vllm, exact match": "exact-match",
    }
    return {name: side(task, name) for name, task in names.items()}, close


def raw_vllm_side(
    model: Path,
    prompts: list[str],
    decoding: DecodingParams,
    memory_fraction: float | None = None,
) -> Side:
    """One `LLM.generate` call over every prompt, in this process."""
    from vllm import LLM, SamplingParams

    from sabha.workers.engine import engine_options

    llm = LLM(**engine_options(str(model), memory_fraction=memory_fraction))
    params = SamplingParams(
        temperature=decoding.temperature,
        max_tokens=decoding.max_tokens,
        seed=decoding.seed,
        ignore_eos=decoding.ignore_eos,
    )

    def run(shards: list[Shard]) -> tuple[float, int]:
        start = time.perf_counter()
        outputs = llm.generate(prompts, params, use_tqdm=False)
        elapsed = time.perf_counter() - start
        ANSWERS["raw"] = {p: o.outputs[0].text for p, o in zip(prompts, outputs, strict=True)}
        RAW_TOKENS[0] = sum(len(o.outputs[0].token_ids) for o in outputs)
        return elapsed, RAW_TOKENS[0]

    return run


def engine_client_side(client: Any, max_in_flight: int) -> Side:
    """Sabha's `EngineClient.generate_shards`, answers collected as shards complete."""

    def run(shards: Iterable[Shard]) -> tuple[float, int]:
        tokens = 0
        answers = {}
        start = time.perf_counter()
        for _, results in client.generate_shards(shards, max_in_flight=max_in_flight):
            tokens += sum(r.num_tokens for r in results)
            answers.update((r.prompt, r.text) for r in results)
        elapsed = time.perf_counter() - start
        ANSWERS["engine"] = answers
        return elapsed, tokens

    return run


def queue_side(client: Any, max_in_flight: int, work: Path, repeat: int, shard_size: int) -> Side:
    """What `sabha eval` runs: the local pool through the queue into SQLite, then scoring.

    Each call gets a fresh database with the same items as the other sides
    (set up untimed); the timed part leases every shard, generates, stores
    each shard's outputs and per-item statistics as it completes, and scores
    the job (bootstrap CIs for chrF++, BLEU and TER by language and region).
    """
    import json

    import yaml

    from sabha.leaderboards._sacrebleu_stats import clear_reference_cache
    from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
    from sabha.platform.catalog import add_model
    from sabha.platform.db import make_engine, session_scope, upgrade_database
    from sabha.platform.services.benchmarks import register_benchmark
    from sabha.platform.services.local_pool import run_local_pool
    from sabha.platform.services.queue import create_job

    path = next(p for p in starter_benchmark_paths() if "kisan" in p.name)
    source = load_benchmark_file(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["dataset"] = {**raw["dataset"], "name": "kisan-repeated", "items": "items.jsonl"}
    raw["decoding"] = {"max_tokens": MAX_TOKENS}  # one limit for both sides
    rows = [
        {**item.model_dump(mode="json"), "id": f"{item.id}-{copy}"}
        for copy in range(repeat)
        for item in source.items
        if item.split == "test"
    ]

    class KeepOpen:
        """The warmed-up client, lent to the pool without being closed."""

        def info(self) -> Any:
            return client.info()

        def generate_shards(self, work: Any, max_in_flight: int = 256) -> Any:
            return client.generate_shards(work, max_in_flight=max_in_flight)

        def close(self) -> None:
            pass

    calls = [0]

    def run(_shards: list[Shard]) -> tuple[float, int]:
        calls[0] += 1
        folder = work / f"queue-{calls[0]}"
        folder.mkdir()
        (folder / "items.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
        (folder / "bench.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
        db = make_engine(f"sqlite:///{folder / 'sabha.db'}")
        upgrade_database(db)
        with session_scope(db) as session:
            benchmark, _ = register_benchmark(
                session, load_benchmark_file(folder / "bench.yaml"), folder / "artifacts"
            )
            model = add_model(session, "tiny", repo_id="org/tiny", revision="0" * 40)
            job_id = create_job(session, model, benchmark, shard_size)[0].id
        tokens = 0
        clear_reference_cache()  # as in a fresh `sabha eval` process
        start = time.perf_counter()
        run_local_pool(
            db, [job_id], lambda *_slot: KeepOpen(), pool_name="bench", max_in_flight=max_in_flight
        )
        elapsed = time.perf_counter() - start
        with db.connect() as connection:
            tokens = connection.exec_driver_sql("SELECT sum(num_tokens) FROM output").scalar()
            ANSWERS["sabha eval"] = dict(
                connection.exec_driver_sql("SELECT prompt, text FROM output").all()
            )
        db.dispose()
        return elapsed, int(tokens or 0)

    return run


def measure(sides: dict[str, Side], shards: list[Shard], rounds: int) -> dict[str, list[float]]:
    """Tokens/s of each side per round; one warm-up pass first, the order alternating."""
    for side in sides.values():
        side(shards)
    rates: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            seconds, tokens = sides[name](shards)
            rates[name].append(tokens / seconds)
    return rates


def report_outputs() -> None:
    """Whether every side answered every prompt exactly as raw vLLM did (greedy)."""
    raw = ANSWERS.get("raw", {})
    for name, answers in ANSWERS.items():
        if name == "raw":
            continue
        same = sum(answers.get(prompt) == text for prompt, text in raw.items())
        print(f"{name} outputs identical to raw vLLM's: {same}/{len(raw)} prompts")


def report(rates: dict[str, list[float]]) -> None:
    """Print each side's median tokens/s and every side's ratio to the first (raw)."""
    raw_name, *others = list(rates)
    for name, values in rates.items():
        print(
            f"{name:34} median {statistics.median(values):10.1f} tokens/s  rounds: "
            + " ".join(f"{v:.1f}" for v in values)
        )
    for name in others:
        ratios = [s / r for s, r in zip(rates[name], rates[raw_name], strict=True)]
        print(
            f"{name} / raw: median {statistics.median(ratios):.3f}  rounds: "
            + " ".join(f"{r:.3f}" for r in ratios)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="Measured rounds per side.")
    parser.add_argument("--repeat", type=int, default=4, help="Copies of the 108 test prompts.")
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument(
        "--max-in-flight", type=int, help="Default: twice the engine's max_num_seqs."
    )
    parser.add_argument(
        "--peer-python",
        type=Path,
        default=Path(".venv-peer/bin/python"),
        help="Python with lm-eval (`make peer` builds it); the lm-eval sides run when it exists.",
    )
    parser.add_argument("--no-peer", action="store_true", help="Leave lm-eval out.")
    args = parser.parse_args()
    announce({})
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    peer = not args.no_peer and args.peer_python.exists()

    import vllm

    from sabha.platform.wire import LocalModelSource
    from sabha.workers.client import EngineClient
    from sabha.workers.local import ensure_ray, shutdown_ray

    with tempfile.TemporaryDirectory(prefix="sabha-throughput-") as folder:
        model, shards, prompts = prepare(Path(folder), args.repeat, args.shard_size)
        ensure_ray()
        client = EngineClient(LocalModelSource(name="tiny", source="local", path=str(model)))
        info = client.info()
        max_in_flight = args.max_in_flight or 2 * (info.max_num_seqs or 128)
        sides = {
            "raw vllm.LLM.generate": raw_vllm_side(model, prompts, shards[0][2]),
            f"sabha engine, shards of {args.shard_size}": engine_client_side(client, max_in_flight),
            "sabha eval (queue, SQLite, scoring)": queue_side(
                client, max_in_flight, Path(folder), args.repeat, args.shard_size
            ),
        }
        close_peer = None
        if peer:
            more, close_peer = lm_eval_sides(
                args.peer_python, model, prompts, references(args.repeat), Path(folder)
            )
            sides.update(more)
        rates = measure(sides, shards, args.rounds)
        if close_peer is not None:
            close_peer()
        client.close()
        del sides
        gc.collect()
        shutdown_ray()

    print(
        f"prompts: {len(prompts)}, max_tokens: {shards[0][2].max_tokens}, "
        f"vllm {vllm.__version__}, {os.cpu_count()} CPU cores, device {info.device}, "
        f"dtype {info.dtype}, max_num_seqs {info.max_num_seqs}, "
        f"max_in_flight {max_in_flight}, {args.rounds} rounds after one warm-up pass, "
        f"load average at start {load}"
    )
    if not peer:
        print(f"lm-eval left out ({'--no-peer' if args.no_peer else 'run `make peer` first'})")
    report(rates)
    report_outputs()


if __name__ == "__main__":
    main()
