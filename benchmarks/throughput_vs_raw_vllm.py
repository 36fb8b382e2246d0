"""Throughput of `sabha eval` against raw `vllm.LLM.generate`, measured in one run.

Both sides generate the same prompts with the same tiny model and greedy
decoding. The raw side is one `LLM.generate` call in this process; the Sabha
side is what `sabha eval` runs: a vLLM engine in a Ray actor, batches sent
from the driver, every batch's outputs committed to the database before the
next, then scoring with bootstrap CIs. Engine start-up is excluded on both
sides (Sabha keeps engines alive across shards and benchmarks).

Usage:
    .venv/bin/python benchmarks/throughput_vs_raw_vllm.py [--repeat 4] [--batch-sizes 16,32,64,128]

Prints one line per Sabha batch size with the ratio Sabha / raw, with and
without the time spent scoring (bootstrap CIs for every metric and group).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path


def _prepare(work: Path, repeat: int) -> tuple[Path, Path, list[str], int]:
    """A tiny model and a benchmark of the kisan-advisory test items repeated ``repeat`` times."""
    import yaml

    from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
    from sabha.workers.tiny_models import make_tiny_model

    source = load_benchmark_file(next(p for p in starter_benchmark_paths() if "kisan" in p.name))
    texts = [t for item in source.items for t in (*item.input.values(), item.reference or "")]
    model = make_tiny_model(work / "model", texts, seed=0, chat_template=None)

    spec = source.spec.model_dump(mode="json")
    spec["name"] = spec["dataset"]["name"] = "throughput"
    spec["dataset"]["items"] = "throughput.jsonl"
    rows = []
    for r in range(repeat):
        for item in source.items:
            if item.split == "test":
                row = item.model_dump(mode="json")
                row["id"] = f"{item.id}-{r}"
                rows.append(row)
    (work / "throughput.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    (work / "throughput.jsonl").write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    )
    template = source.spec.prompt.template
    prompts = [template.format(**row["input"]) for row in sorted(rows, key=lambda r: r["id"])]
    return model, work / "throughput.yaml", prompts, source.spec.decoding.max_tokens


def _raw(
    model: Path, prompts: list[str], max_tokens: int, batch_sizes: list[int]
) -> tuple[float, int, dict[int, float]]:
    """One ``generate`` call over all prompts, then one call per batch for each batch size."""
    from vllm import LLM, SamplingParams

    from sabha.workers.engine import engine_options

    llm = LLM(**engine_options(str(model)))
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=0)
    llm.generate(prompts[:8], params, use_tqdm=False)  # warm-up
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    batched = {}
    for size in batch_sizes:
        start = time.perf_counter()
        for i in range(0, len(prompts), size):
            llm.generate(prompts[i : i + size], params, use_tqdm=False)
        batched[size] = time.perf_counter() - start
    del llm, outputs
    gc.collect()
    return elapsed, tokens, batched


def _sabha(
    work: Path, model: Path, benchmark: Path, batch_sizes: list[int]
) -> list[tuple[int, float, float, int]]:
    from sqlmodel import Session, func, select

    from sabha.annotation.release import register_benchmark
    from sabha.platform.benchmarks import load_benchmark_file
    from sabha.platform.catalog import add_model
    from sabha.platform.db import make_engine, session_scope, upgrade_database
    from sabha.platform.domain import Output
    from sabha.platform.evaluation import create_job, run_job, score_job
    from sabha.workers.local import RayEngineClient, ensure_ray

    ensure_ray()
    client = RayEngineClient(str(model))
    client.info()  # engine start-up, excluded like the raw side's
    client.generate([{"item_id": 0, "text": "warm-up"}], {"max_tokens": 8})
    results = []
    for batch_size in batch_sizes:
        db = make_engine(f"sqlite:///{work / f'bench-{batch_size}.db'}")
        upgrade_database(db)
        with session_scope(db) as session:
            registered, _ = register_benchmark(
                session, load_benchmark_file(benchmark), work / "artifacts"
            )
            tiny = add_model(session, "tiny", path=model, smoke_test=True)
            job, _ = create_job(session, tiny, registered)
        start = time.perf_counter()
        run_job(db, job.id, client, batch_size=batch_size)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        score_job(db, job.id)  # the same scoring again, to report it apart
        scoring = time.perf_counter() - start
        with Session(db) as session:
            tokens = session.exec(select(func.sum(Output.num_tokens))).one()
        results.append((batch_size, elapsed, scoring, int(tokens or 0)))
        db.dispose()
    client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=4, help="Copies of the 108 test prompts.")
    parser.add_argument(
        "--batch-sizes", default="16,32,64,128", help="Sabha batch sizes to measure."
    )
    args = parser.parse_args()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

    with tempfile.TemporaryDirectory(prefix="sabha-throughput-") as folder:
        work = Path(folder)
        model, benchmark, prompts, max_tokens = _prepare(work, args.repeat)
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        raw_seconds, raw_tokens, raw_batched = _raw(model, prompts, max_tokens, sizes)
        sabha = _sabha(work, model, benchmark, sizes)

    import vllm

    print(
        f"prompts: {len(prompts)}, max_tokens: {max_tokens}, vllm {vllm.__version__}, "
        f"{os.cpu_count()} CPU cores"
    )
    print(
        f"raw vllm.LLM.generate: {raw_seconds:7.2f} s  {len(prompts) / raw_seconds:8.1f} prompts/s"
        f"  {raw_tokens / raw_seconds:9.1f} tokens/s"
    )
    raw_rate = raw_tokens / raw_seconds
    print("sabha/raw: Sabha's tokens/s over raw vLLM's with all prompts in one call;")
    print("sabha/raw same batches: over raw vLLM called with Sabha's batch size;")
    print("each also without the time Sabha spends scoring (bootstrap CIs).")
    for batch_size, seconds, scoring, tokens in sabha:
        rate, generating = tokens / seconds, tokens / (seconds - scoring)
        same = raw_tokens / raw_batched[batch_size]
        print(
            f"sabha eval, batch {batch_size:4}: {seconds:6.2f} s  {tokens / seconds:8.1f} tokens/s"
            f"  sabha/raw = {rate / raw_rate:.2f} ({generating / raw_rate:.2f} without scoring)"
            f"  sabha/raw same batches = {rate / same:.2f} ({generating / same:.2f})"
        )


if __name__ == "__main__":
    main()
