"""Pools driven through the queue functions, for the verification tests.

Honest pools answer from the prompt, as an engine gives the same answer for
the same prompt; forgers answer anything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import generation_items, write_benchmark
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import Pool, PoolKind, PoolStatus, Score, ScoringRun, id_of
from sabha.platform.services.accounts import create_user
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.pools import register_pool
from sabha.platform.services.queue import (
    create_job,
    finalize_job,
    lease_next_shard,
    submit_shard_results,
)
from sabha.platform.services.verification import VerificationPolicy
from sabha.platform.wire import EngineInfo, GenerationRequest, GenerationResult, ShardResult

H100 = EngineInfo(host="a", vllm="0.32.0", dtype="bfloat16", device="NVIDIA H100 80GB HBM3")
L4 = EngineInfo(host="b", vllm="0.32.0", dtype="bfloat16", device="NVIDIA L4")
ALL_NEW = VerificationPolicy(new_pool_shards=1000, fraction=0.0)
PROVEN = VerificationPolicy(new_pool_shards=0, fraction=0.0)

Answer = Callable[[GenerationRequest], str]


def honest(request: GenerationRequest) -> str:
    return f"Jibu la swali: {request.text[-14:]}"


def forged(request: GenerationRequest) -> str:
    return "Maji mengi sana kwa kila shamba."


def _benchmark_and_job(db: Engine, tmp_path: Path, model: str = "m", n_items: int = 8) -> int:
    path = tmp_path / "bench" / "tiny-gen.yaml"
    if not path.exists():
        write_benchmark(path.parent, generation_items(n_items))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, load_benchmark_file(path), tmp_path / "art")
        job, _ = create_job(
            session,
            add_model(session, model, repo_id=f"org/{model}", revision="a" * 40),
            benchmark,
            2,
        )
        return id_of(job)


def _volunteer(db: Engine, name: str, owner: str | None = None) -> int:
    with session_scope(db) as session:
        user = create_user(session, owner or f"{name}-owner")
        owner_id = id_of(user)
    return register_pool(db, name, PoolKind.REMOTE, {"memory_bytes": 80 * 10**9}, owner_id)


def _answer(
    db: Engine,
    pool_id: int,
    answer: Answer,
    policy: VerificationPolicy,
    info: EngineInfo = H100,
    engine_seconds: float | None = None,
) -> str | None:
    """Lease one shard for ``pool_id`` and submit its answers; the run's status, or None."""
    lease = lease_next_shard(db, pool_id, policy=policy)
    if lease is None:
        return None
    result = ShardResult(
        run_id=lease.run_id,
        token=lease.token,
        results=[
            GenerationResult(item_id=r.item_id, prompt=r.text, text=answer(r))
            for r in lease.requests
        ],
        executed_on=info,
        engine_seconds=engine_seconds,
    )
    return submit_shard_results(db, result, policy).status


def _work(db: Engine, pools: dict[int, Answer], policy: VerificationPolicy) -> None:
    """Every active pool takes turns until none can lease anything."""
    busy = True
    while busy:
        busy = False
        for pool_id, answer in pools.items():
            with Session(db) as session:
                if session.get(Pool, pool_id).status != PoolStatus.ACTIVE:  # type: ignore[union-attr]
                    continue
            busy = _answer(db, pool_id, answer, policy) is not None or busy


def _overall(db: Engine, job_id: int) -> dict[str, float]:
    with Session(db) as session:
        rows = session.exec(
            select(Score.metric, Score.value)
            .join(ScoringRun, col(ScoringRun.id) == Score.scoring_run_id)
            .where(ScoringRun.job_id == job_id, Score.breakdown == "overall")
        ).all()
    return dict(rows)


def _trusted_scores(db: Engine, tmp_path: Path) -> dict[str, float]:
    """The same benchmark answered honestly by the operator's own (trusted) pool."""
    job_id = _benchmark_and_job(db, tmp_path, model="reference")
    local = register_pool(db, "local")
    while _answer(db, local, honest, ALL_NEW, info=H100):
        pass
    assert finalize_job(db, job_id)
    return _overall(db, job_id)
