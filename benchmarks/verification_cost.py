"""What verification costs honest volunteers, and how fast it catches forgers.

Runs the real queue and verification code in-process on SQLite (no engine:
an honest pool answers with ``stand_in_answer``, a forger with one fixed
sentence) under the shipped policy (``SABHA_REPLICATION_*`` defaults, or
the values given):

- **cost**: honest pools of different owners work through ``--jobs`` jobs of
  ``--shards`` shards each; the extra compute is runs with results divided
  by shards, minus one, while the pools are new and once they are proven;
- **catch rate**: one pool earns trust honestly, then forges a share ``q``
  of the shards it runs, while honest pools keep working; per ``q`` and
  ``--trials`` different secret keys (the draws depend on the key) it
  reports how often the forger was caught before the end, how many jobs it
  touched before that, and how many jobs were ever scored with a forged
  shard in them (published, if only until it was caught).

Usage:
    .venv/bin/python benchmarks/verification_cost.py [--jobs 12] [--shards 8] [--trials 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from settings_changed import announce

FORGED = "Maji mengi sana kwa kila shamba."


def _benchmark(folder: Path, items: int) -> Path:
    import json

    rows = [
        {
            "id": f"q-{i:04d}",
            "language": "sw-Latn",
            "split": "test",
            "input": {"question": f"Swali {i}: mahindi yapandwe lini shambani {i}?"},
            "reference": "Panda mahindi mvua za kwanza zikianza kunyesha.",
        }
        for i in range(items)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cost.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    spec = {
        "name": "cost",
        "title": "Verification cost",
        "description": "Stand-in answers.",
        "task": "generation",
        "languages": ["sw-Latn"],
        "dataset": {
            "name": "cost",
            "items": "cost.jsonl",
            "license": "CC0-1.0",
            "card": {
                "summary": "s",
                "collection_process": "c",
                "intended_use": "i",
                "limitations": "l",
            },
        },
        "prompt": {"template": "Question: {question}\nAnswer:"},
        "metrics": ["chrf++"],
        "primary_metric": "chrf++",
        "decoding": {"max_tokens": 8},
    }
    path = folder / "cost.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


class World:
    """A fresh database with one benchmark, pools of different owners, and jobs on demand."""

    def __init__(self, root: Path, shards: int, key: str, **policy: Any) -> None:
        from sabha.platform.benchmarks import load_benchmark_file
        from sabha.platform.db import make_engine, session_scope, upgrade_database
        from sabha.platform.domain import id_of
        from sabha.platform.services.benchmarks import register_benchmark
        from sabha.platform.services.verification import VerificationPolicy

        self.db = make_engine(f"sqlite:///{root / 'cost.db'}")
        upgrade_database(self.db)
        loaded = load_benchmark_file(_benchmark(root / "bench", shards * 2))
        with session_scope(self.db) as session:
            self.benchmark_id = id_of(register_benchmark(session, loaded, root / "art")[0])
        self.policy = VerificationPolicy(key=key, **policy)
        self.models = 0
        self.forged_scored: set[int] = set()  # jobs ever scored with a forged shard

    def pool(self, name: str) -> int:
        from sabha.platform.db import session_scope
        from sabha.platform.domain import PoolKind, id_of
        from sabha.platform.services.accounts import create_user
        from sabha.platform.services.pools import register_pool

        with session_scope(self.db) as session:
            owner = id_of(create_user(session, f"{name}-owner"))
        return register_pool(self.db, name, PoolKind.REMOTE, {"memory_bytes": 10**10}, owner)

    def job(self) -> int:
        from sabha.platform.catalog import add_model
        from sabha.platform.db import session_scope
        from sabha.platform.domain import Benchmark, id_of
        from sabha.platform.services.queue import create_job

        with session_scope(self.db) as session:
            benchmark = session.get_one(Benchmark, self.benchmark_id)
            model = add_model(session, f"m{self.models}", repo_id="org/m", revision="a" * 40)
            self.models += 1
            return id_of(create_job(session, model, benchmark, 2)[0])

    def turn(self, pool_id: int, forge: float, rng: random.Random) -> str | None:
        """One lease and result of ``pool_id``; it forges with probability ``forge``."""
        from sabha.platform.services.queue import (
            PoolNotActive,
            lease_next_shard,
            submit_shard_results,
        )
        from sabha.platform.wire import EngineInfo, GenerationResult, ShardResult
        from sabha.workers.standin import stand_in_answer

        try:
            lease = lease_next_shard(self.db, pool_id, policy=self.policy)
        except PoolNotActive:
            return None
        if lease is None:
            return None
        forged = rng.random() < forge
        result = ShardResult(
            run_id=lease.run_id,
            token=lease.token,
            results=[
                GenerationResult(
                    item_id=r.item_id, text=FORGED if forged else stand_in_answer(r.text)
                )
                for r in lease.requests
            ],
            executed_on=EngineInfo(device="cpu"),
        )
        try:
            return submit_shard_results(self.db, result, self.policy).status
        except PoolNotActive:
            return None

    def work(self, pools: dict[int, float], rng: random.Random, rounds: int = 1000) -> None:
        """Pools take turns until nobody can lease; jobs are finalized as they complete."""
        from sabha.platform.services.queue import finish_complete_jobs

        for _ in range(rounds):
            busy = False
            for pool_id, forge in pools.items():
                busy = self.turn(pool_id, forge, rng) is not None or busy
            if finish_complete_jobs(self.db, self.policy):
                self.forged_scored |= set(self.jobs_scored_with_forgery())
            if not busy:
                return

    def jobs_scored_with_forgery(self) -> list[int]:
        import sqlalchemy as sa

        with self.db.connect() as connection:
            return list(
                connection.execute(
                    sa.text(
                        "SELECT DISTINCT s.job_id FROM shard s JOIN output o "
                        "ON o.shard_run_id = s.accepted_run_id "
                        "JOIN scoring_run r ON r.job_id = s.job_id WHERE o.text = :f"
                    ),
                    {"f": FORGED},
                ).scalars()
            )

    def count(self, sql: str, **params: Any) -> int:
        import sqlalchemy as sa

        with self.db.connect() as connection:
            return int(connection.execute(sa.text(sql), params).scalar_one())


def cost(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp), args.shards, "cost-key", new_pool_shards=args.new_pool_shards)
        pools = {world.pool(f"honest-{i}"): 0.0 for i in range(args.pools)}
        rng = random.Random(0)
        phases = []
        for phase in ("new", "proven"):
            finished = "SELECT count(*) FROM shard_run WHERE finished_at IS NOT NULL"
            runs_before = world.count(finished)
            shards_before = world.count("SELECT count(*) FROM shard")
            for _ in range(args.jobs):
                world.job()
            world.work(pools, rng)
            runs = world.count(finished)
            shards = world.count("SELECT count(*) FROM shard")
            scored = world.count("SELECT count(DISTINCT job_id) FROM scoring_run")
            phases.append((phase, (runs - runs_before) / (shards - shards_before) - 1, scored))
        quarantined = world.count("SELECT count(*) FROM pool WHERE status = 'quarantined'")
    print(
        f"\ncost: {args.pools} honest pools of different owners, {args.jobs} jobs of "
        f"{args.shards} shards per phase"
    )
    for phase, extra, _scored in phases:
        print(f"  {phase:7} pools: extra compute {extra:.0%} (runs with results per shard, - 1)")
    print(f"  jobs scored: {phases[-1][2]} of {2 * args.jobs}; honest quarantined: {quarantined}")


def catch(args: argparse.Namespace, share: float) -> dict[str, Any]:
    caught, jobs_touched, forged_published = 0, [], 0
    for trial in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp:
            world = World(
                Path(tmp), args.shards, f"key-{trial}", new_pool_shards=args.new_pool_shards
            )
            honest = {world.pool(f"honest-{i}"): 0.0 for i in range(args.pools)}
            sleeper = world.pool("sleeper")
            rng = random.Random(trial)
            while (
                world.count("SELECT agreements FROM pool WHERE id = :p", p=sleeper)
                < args.new_pool_shards
            ):  # it earns trust honestly alongside the others
                world.job()
                world.work({sleeper: 0.0, **honest}, rng)
            first_forged_job = world.models + 1
            for _ in range(args.jobs):
                world.job()
            world.work({sleeper: share, **honest}, rng)
            status = world.count("SELECT status = 'quarantined' FROM pool WHERE id = :p", p=sleeper)
            caught += status
            jobs_touched.append(
                world.count(
                    "SELECT count(DISTINCT job_id) FROM shard_run WHERE pool_id = :p "
                    "AND job_id >= :j",
                    p=sleeper,
                    j=first_forged_job,
                )
            )
            forged_published += len(world.forged_scored)
    return {
        "share": share,
        "caught": caught / args.trials,
        "jobs": statistics.mean(jobs_touched),
        "published": forged_published,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--pools", type=int, default=3, help="honest pools")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--new-pool-shards", type=int, default=20)
    args = parser.parse_args()
    from sabha.platform.settings import Settings

    shipped = Settings()
    announce({})
    print(
        f"policy: new-pool shards {args.new_pool_shards} (shipped "
        f"{shipped.replication_new_pool_shards}), fraction {shipped.replication_fraction}, "
        f"audit {shipped.replication_audit_jobs}"
    )
    started = time.monotonic()
    cost(args)
    print(
        f"\ncatch rate: a pool earns trust, then forges a share q of the shards it runs; "
        f"{args.trials} trials (secret keys) each, {args.jobs} jobs of {args.shards} shards, "
        f"{args.pools} honest pools"
    )
    header = ("q", "caught", "jobs it touched", "jobs ever scored with a forgery")
    print("  {:>5} {:>7} {:>16} {:>32}".format(*header))
    for share in (1.0, 0.5, 0.2, 0.05):
        row = catch(args, share)
        print(
            f"  {row['share']:>5.2f} {row['caught']:>7.0%} {row['jobs']:>16.1f} "
            f"{row['published']:>32}"
        )
    print(f"\ntook {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
