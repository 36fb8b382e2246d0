"""How soon scores are published after a 10,000-item job's last output lands.

Creates a generation benchmark of 10,000 items in 20 languages, runs its job
through the real queue (lease, submit) with synthetic answers (references
with words dropped and swapped), so per-item statistics are computed as each
shard arrives, then times the last shard's submission plus ``finalize_job``
(scoring with 1,000 bootstrap resamples for chrF++, BLEU and TER over 21
groups, and the leaderboard rebuild). SQLite, the default database.

    .venv/bin/python benchmarks/scoring_latency.py [--items 10000]

Goal: < 2 s from the last output's submission to published scores.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from settings_changed import announce

LANGUAGES = [
    "hi-Deva", "bn-Beng", "ta-Taml", "te-Telu", "mr-Deva", "gu-Gujr", "kn-Knda",
    "ml-Mlym", "pa-Guru", "or-Orya", "as-Beng", "ur-Arab", "ne-Deva", "sw-Latn",
    "yo-Latn", "ha-Latn", "am-Ethi", "zu-Latn", "ig-Latn", "so-Latn",
]  # fmt: skip
WORDS = (
    "बीज मिट्टी पानी खाद फसल किसान सिंचाई गेहूँ धान मौसम "
    "mbegu udongo maji mbolea mazao mkulima umwagiliaji mahindi mvua soko "
    "விதை மண் நீர் உரம் பயிர் விவசாயி நெல் மழை சந்தை பூச்சி"
).split()


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _answer(rng: random.Random, reference: str) -> str:
    words = reference.split()
    words = [w for w in words if rng.random() > 0.2]
    if len(words) > 2:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    announce({})

    import yaml

    from sabha.platform.benchmarks import load_benchmark_file
    from sabha.platform.catalog import add_model
    from sabha.platform.db import make_engine, session_scope, upgrade_database
    from sabha.platform.services.benchmarks import register_benchmark
    from sabha.platform.services.pools import register_pool
    from sabha.platform.services.queue import (
        create_job,
        finalize_job,
        lease_next_shard,
        submit_shard_results,
    )
    from sabha.platform.wire import EngineInfo, GenerationResult, ShardResult

    rng = random.Random(11)
    root = Path(tempfile.mkdtemp(prefix="sabha-scoring-"))
    items = [
        {
            "id": f"i-{i:05d}",
            "language": LANGUAGES[i % len(LANGUAGES)],
            "split": "test",
            "input": {"question": _sentence(rng, 12)},
            "reference": _sentence(rng, 25),
        }
        for i in range(args.items)
    ]
    (root / "big.jsonl").write_text(
        "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8"
    )
    spec = {
        "name": "big",
        "title": "Big",
        "description": "Synthetic benchmark for the scoring latency script.",
        "task": "generation",
        "languages": LANGUAGES,
        "dataset": {
            "name": "big",
            "items": "big.jsonl",
            "license": "CC-BY-4.0",
            "card": {
                "summary": "Synthetic.",
                "collection_process": "Generated.",
                "intended_use": "Measurement.",
                "limitations": "Not real data.",
            },
        },
        "prompt": {"template": "{question}"},
        "metrics": ["chrf++", "bleu", "ter"],
        "primary_metric": "chrf++",
        "breakdowns": ["language"],
    }
    (root / "big.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    db = make_engine(f"sqlite:///{root / 'sabha.db'}")
    upgrade_database(db)
    references = {item["id"]: str(item["reference"]) for item in items}
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(
            session, load_benchmark_file(root / "big.yaml"), root / "artifacts"
        )
        model = add_model(session, "synthetic", repo_id="org/synthetic", revision="a" * 40)
        job, _ = create_job(session, model, benchmark)
        job_id = job.id
        from sqlmodel import select

        from sabha.platform.domain import Item

        keys = {i.id: i.key for i in session.exec(select(Item))}
    pool = register_pool(db, "bench")
    leases = []
    while (lease := lease_next_shard(db, pool, lease_seconds=3600)) is not None:
        leases.append(lease)

    def result(lease):  # type: ignore[no-untyped-def]
        return ShardResult(
            run_id=lease.run_id,
            token=lease.token,
            results=[
                GenerationResult(
                    item_id=r.item_id,
                    prompt=r.text,
                    text=_answer(rng, references[keys[r.item_id]]),
                )
                for r in lease.requests
            ],
            executed_on=EngineInfo(host="bench"),
        )

    submit_times = []
    for lease in leases[:-1]:
        started = time.perf_counter()
        submit_shard_results(db, result(lease))
        submit_times.append(time.perf_counter() - started)
    last = result(leases[-1])
    started = time.perf_counter()
    submit_shard_results(db, last)
    landed = time.perf_counter()
    assert finalize_job(db, job_id)  # type: ignore[arg-type]
    published = time.perf_counter()
    print(
        f"{args.items} items, {len(leases)} shards, {len(LANGUAGES)} languages + overall, "
        "chrF++ + BLEU + TER, 1,000 resamples, SQLite"
    )
    print(
        f"submitting a shard (outputs + per-item statistics): median "
        f"{statistics.median(submit_times) * 1000:.0f} ms, max {max(submit_times) * 1000:.0f} ms"
    )
    print(f"last shard submitted in {landed - started:.2f} s")
    print(f"finalize (score + leaderboard rebuild): {published - landed:.2f} s")
    total = published - started
    print(
        f"scores published {total:.2f} s after the last output arrived (goal < 2 s: "
        f"{total / 2:.2f} of the goal)"
    )


if __name__ == "__main__":
    main()
