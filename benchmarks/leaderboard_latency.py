"""Leaderboard read path at scale: page and JSON latency with 1,000 models x 20 languages.

Seeds a SQLite database (the default) with one benchmark in 20 languages and
N scored models (scores written as a scoring run would write them, then one
leaderboard rebuild), serves the app with a threaded WSGI server on
127.0.0.1, and measures the first page of the leaderboard (HTML and JSON)
over loopback: p50 and p99 with one client, then with four at once.

    .venv/bin/python benchmarks/leaderboard_latency.py [--models 1000] [--requests 300]

Goal: p99 < 50 ms for the page and its JSON at 1,000 models (one client).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from settings_changed import NO_RATE_LIMITS, announce
from synthetic import METRICS, write_benchmark

LANGUAGES = [
    "hi-Deva", "bn-Beng", "ta-Taml", "te-Telu", "mr-Deva", "gu-Gujr", "kn-Knda",
    "ml-Mlym", "pa-Guru", "or-Orya", "as-Beng", "ur-Arab", "ne-Deva", "sw-Latn",
    "yo-Latn", "ha-Latn", "am-Ethi", "zu-Latn", "ig-Latn", "so-Latn",
]  # fmt: skip


def seed(data_dir: Path, n_models: int) -> str:
    """Create the database, the benchmark and ``n_models`` scored models."""
    import sqlalchemy as sa

    from sabha.leaderboards.board import rebuild_leaderboard
    from sabha.platform.benchmarks import load_benchmark_file
    from sabha.platform.db import make_engine, session_scope, upgrade_database
    from sabha.platform.domain import Job, Model, Score, ScoringRun, utcnow
    from sabha.platform.services.benchmarks import register_benchmark

    bench_dir = data_dir / "bench"
    bench_dir.mkdir(parents=True)
    items = [
        {
            "id": f"i-{i:03d}",
            "language": LANGUAGES[i % len(LANGUAGES)],
            "split": "test",
            "input": {"question": f"question {i}"},
            "reference": f"answer {i}",
        }
        for i in range(200)
    ]
    path = write_benchmark(bench_dir, "scale", "Scale test", LANGUAGES, items)

    url = f"sqlite:///{data_dir / 'sabha.db'}"
    engine = make_engine(url)
    upgrade_database(engine)
    rng = random.Random(7)
    with session_scope(engine) as session:
        benchmark, _ = register_benchmark(
            session, load_benchmark_file(path), data_dir / "artifacts"
        )
        models = [
            Model(name=f"model-{i:05d}", source="hub", repo_id=f"org/m{i}", revision="a" * 40)
            for i in range(n_models)
        ]
        session.add_all(models)
        session.flush()
        jobs = [
            Job(
                model_id=m.id,  # type: ignore[arg-type]
                benchmark_id=benchmark.id,  # type: ignore[arg-type]
                generation_hash=benchmark.generation_hash,
                generation={},
                decoding=dict(benchmark.decoding),
                status="completed",
            )
            for m in models
        ]
        session.add_all(jobs)
        session.flush()
        runs = [
            ScoringRun(
                job_id=j.id,  # type: ignore[arg-type]
                scoring_hash=benchmark.scoring_hash,
                spec={},
                signatures={},
                failure_reasons={},
                pools=["local"],
                items=200,
            )
            for j in jobs
        ]
        session.add_all(runs)
        session.flush()
        scores = []
        now = utcnow()
        for run in runs:
            base = rng.uniform(5, 60)
            for metric in METRICS:
                for breakdown, group in [("overall", "all")] + [("language", t) for t in LANGUAGES]:
                    value = base + rng.uniform(-5, 5)
                    scores.append(
                        {
                            "scoring_run_id": run.id,
                            "metric": metric,
                            "breakdown": breakdown,
                            "group": group,
                            "value": value,
                            "ci_low": value - 2,
                            "ci_high": value + 2,
                            "n": 200 if breakdown == "overall" else 10,
                            "too_few": False,
                            "created_at": now,
                        }
                    )
        session.execute(sa.insert(Score), scores)
        rebuild_leaderboard(session, benchmark)
    engine.dispose()
    return url


def measure(base: str, path: str, n: int, clients: int) -> list[float]:
    """Latencies in milliseconds of ``n`` GETs of ``path`` by ``clients`` at once."""

    def one(_: int) -> float:
        start = time.perf_counter()
        with urllib.request.urlopen(base + path) as reply:
            reply.read()
        return (time.perf_counter() - start) * 1000

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(n)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    from sabha.platform.app import create_app
    from sabha.platform.settings import Settings

    # Four clients from one address outrun the shipped 600 requests a minute per address.
    announce(NO_RATE_LIMITS, "four clients on one address outrun the per-address limit")
    data_dir = Path(tempfile.mkdtemp(prefix="sabha-latency-"))
    started = time.perf_counter()
    seed(data_dir, args.models)
    print(
        f"seeded {args.models} models x {len(LANGUAGES)} languages in "
        f"{time.perf_counter() - started:.1f} s (SQLite)"
    )
    app = create_app(Settings(data_dir=data_dir, rate_limits=False))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    for path in ("/benchmarks/scale", "/api/v1/benchmarks/scale/leaderboard"):
        cold = measure(base, path, 1, 1)[0]  # renders from the read model, fills the cache
        print(f"first (uncached) request of {path}: {cold:.1f} ms")
        measure(base, path, 20, 1)  # warm up
    with urllib.request.urlopen(base + "/benchmarks/scale") as reply:
        size = len(reply.read())
    print(f"page size: {size / 1024:.0f} KiB (first page of 50 rows)")
    print(f"{'path':42} {'clients':>7} {'p50 ms':>8} {'p99 ms':>8} {'p99/goal':>9}")
    for path in ("/benchmarks/scale", "/api/v1/benchmarks/scale/leaderboard"):
        for clients in (1, 4):
            times = sorted(measure(base, path, args.requests, clients))
            p50 = statistics.median(times)
            p99 = times[min(len(times) - 1, int(round(0.99 * len(times))) - 1)]
            print(f"{path:42} {clients:7} {p50:8.1f} {p99:8.1f} {p99 / 50:9.2f}")
    server.shutdown()


if __name__ == "__main__":
    main()
