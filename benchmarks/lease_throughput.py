"""Leases per second on PostgreSQL: 100,000 queued shards, 8 concurrent clients.

Fills a fresh PostgreSQL schema with one job of ``--shards`` one-item shards
(rows inserted in bulk, not through benchmark files), registers 8 local pools
and lets 8 processes lease as fast as they can for ``--seconds``: first one
shard a call (``lease_next_shard``), then, in a fresh schema, ``--batch``
shards a call (``lease_shards``, what ``POST /api/v1/leases/batch`` runs).
Each call is a full transaction: the pool's check, one ``WITH picked AS
MATERIALIZED (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n) UPDATE ...
RETURNING`` that picks and claims the shards (never one the pool's owner
ran, nor one too large for its memory), one multi-row ``INSERT`` of their
shard runs, and the rendered prompts; the expiry sweep runs every few
seconds, not in every lease. Every leased shard is checked to be leased
exactly once.

    .venv/bin/python benchmarks/lease_throughput.py \\
        [--url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--seconds 10] [--batch 8]

Goal: >= 2,000 leases/s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import uuid

import sqlalchemy as sa
from settings_changed import announce

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

AGENT_BATCH = 8
"""What an agent with one vLLM engine asks for: twice its batch (256 sequences) in
64-item shards (``workers.agent``)."""


def _fill(url: str, shards: int) -> int:
    from sqlmodel import Session

    from sabha.platform.db import make_engine, session_scope, upgrade_database
    from sabha.platform.domain import (
        Benchmark,
        Dataset,
        DatasetVersion,
        Item,
        Job,
        Model,
        Shard,
        id_of,
    )

    engine = make_engine(url)
    upgrade_database(engine)
    with session_scope(engine) as session:
        dataset = Dataset(name="lease-bench", title="Lease benchmark", license="CC0-1.0")
        session.add(dataset)
        session.flush()
        version = DatasetVersion(
            dataset_id=id_of(dataset), content_hash="0" * 64, item_count=1, languages=["sw-Latn"]
        )
        session.add(version)
        session.flush()
        item = Item(
            dataset_version_id=id_of(version),
            key="i-0",
            language="sw-Latn",
            split="test",
            input={"question": "Nipande mahindi lini?"},
            reference="Mwanzoni mwa mvua.",
            attributes={},
        )
        model = Model(name="m", source="hub", repo_id="org/m", revision="a" * 40)
        session.add_all([item, model])
        session.flush()
        benchmark = Benchmark(
            name="lease-bench", version="1", title="t", description="d", task="generation",
            dataset_version_id=id_of(version), prompt_template="Q: {question}\nA:",
            labels=[], answer={}, metrics=["chrf++"], primary_metric="chrf++",
            breakdowns=[], languages=["sw-Latn"], decoding={"max_tokens": 8},
            generation_hash="g" * 64, scoring_hash="s" * 64, definition_hash="d" * 64,
        )  # fmt: skip
        session.add(benchmark)
        session.flush()
        job = Job(
            model_id=id_of(model), benchmark_id=id_of(benchmark), generation_hash="g" * 64,
            generation={"prompt_template": "Q: {question}\nA:", "max_model_len": 2048},
            decoding={"max_tokens": 8},
        )  # fmt: skip
        session.add(job)
        session.flush()
        job_id, item_id = id_of(job), id_of(item)
    with Session(engine) as session, session.begin():
        session.execute(
            sa.insert(Shard),
            [{"job_id": job_id, "index": i, "item_ids": [item_id]} for i in range(shards)],
        )
    with engine.connect() as connection:  # what autovacuum would do soon after a bulk insert
        connection.execute(sa.text("ANALYZE"))
    engine.dispose()
    return job_id


def _client(
    url: str, number: int, seconds: float, ready: object, batch: int, counts: object
) -> None:
    from sabha.platform.db import make_engine
    from sabha.platform.services.pools import register_pool
    from sabha.platform.services.queue import lease_next_shard, lease_shards

    engine = make_engine(url)
    pool = register_pool(engine, f"bench-{number}")
    ready.wait()  # type: ignore[attr-defined]  # every client connected and registered first
    start = time.time()
    leased = 0
    while time.time() < start + seconds:
        if batch == 1:  # the single lease call, as agents of protocol 1.1 make it
            got = 0 if lease_next_shard(engine, pool) is None else 1
        else:
            got = len(lease_shards(engine, pool, batch))
        if not got:
            break
        leased += got
    counts[number] = leased  # type: ignore[index]
    engine.dispose()


def _measure(args: argparse.Namespace, batch: int) -> float:
    """Leases per second of ``args.clients`` clients leasing ``batch`` shards a call."""
    schema = f"lease_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{args.url}?options=-csearch_path%3D{schema}"
    try:
        began = time.perf_counter()
        _fill(url, args.shards)
        print(f"{args.shards} shards queued in {time.perf_counter() - began:.1f} s")
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager:
            counts = manager.dict()
            ready = context.Barrier(args.clients)
            workers = [
                context.Process(target=_client, args=(url, n, args.seconds, ready, batch, counts))
                for n in range(args.clients)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            total = sum(counts.values())
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            runs, distinct = connection.execute(
                sa.text("SELECT count(*), count(DISTINCT shard_id) FROM shard_run")
            ).one()
        engine.dispose()
        assert runs == distinct == total, (runs, distinct, total)
        rate = total / args.seconds
        print(
            f"{batch} shard(s) a call: {total} leases by {args.clients} clients in "
            f"{args.seconds:.0f} s: {rate:,.0f} leases/s (each shard leased once: "
            f"{runs == distinct})"
        )
        return rate
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--shards", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--batch",
        type=int,
        default=AGENT_BATCH,
        help=f"shards a batch call asks for (default {AGENT_BATCH}, an agent's usual ask)",
    )
    args = parser.parse_args()
    if args.batch < 1:
        parser.error(f"--batch must be at least 1, not {args.batch}")
    announce({})  # the queue functions themselves: no setting applies
    single = _measure(args, 1)
    batched = _measure(args, args.batch)
    print(f"batch of {args.batch} vs single: {batched / single:.1f}x")


if __name__ == "__main__":
    main()
