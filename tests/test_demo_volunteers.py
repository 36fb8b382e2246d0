"""`sabha demo`'s volunteer story: two demo pools lease a job over HTTP and verify each other.

The demo runs with the stand-in engine (``--stand-in-engine``, hidden, tests
only) so it takes seconds: this is about the agents, the lease protocol over
the demo's own HTTP server and the verification rules, not vLLM (the
leaderboard's part on vLLM: tests/test_inference.py; real agents on vLLM:
tests/test_volunteer_pools.py; Label Studio's part: tests/test_demo_annotation.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from pooltools import free_port
from sqlmodel import Session, col, create_engine, select
from webtools import sign_in

from sabha.platform.app import create_app
from sabha.platform.cli.signals import Terminated, reclaim_sigterm, stop_on_sigterm
from sabha.platform.domain import (
    Job,
    JobStatus,
    Model,
    Pool,
    PoolKind,
    RunStatus,
    RunVerdict,
    Shard,
    ShardRun,
    User,
)
from sabha.platform.settings import Settings

pytestmark = pytest.mark.slow

DEMO = ("demo", "--no-labelstudio", "--stand-in-engine", "0")


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("demo")
    env = {
        **os.environ,
        "SABHA_DATA_DIR": str(root / "data"),
        "SABHA_PORT": str(free_port()),
        "HOME": str(root / "home"),
    }
    for name in ("SABHA_DATABASE_URL", "SABHA_POOL_CLIENT_ID", "SABHA_POOL_CLIENT_SECRET"):
        env.pop(name, None)
    yield env


def _demo(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "sabha.platform.cli", *DEMO, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def first_demo(demo_env: dict[str, str]) -> str:
    return _demo(demo_env, "--no-serve")


def _settings(env: dict[str, str]) -> Settings:
    return Settings(data_dir=Path(env["SABHA_DATA_DIR"]), rate_limits=False)


def _sign_ins(said: str) -> dict[str, str]:
    return dict(re.findall(r"/account as (demo-volunteer-\d) / (\S+) ", said))


def test_demo_pools_lease_and_post_over_http_and_count_only_once_two_owners_agree(
    first_demo: str, demo_env: dict[str, str]
) -> None:
    said = first_demo
    port = demo_env["SABHA_PORT"]
    # --no-serve: the agents' server is on any free port, gone when the demo ends.
    assert re.search(r"asks http://127\.0\.0\.1:\d+ for work", said)
    first, second = said.split("demo-pool-2: demo-volunteer-2's agent", 1)
    # The first pool leases both shards and posts them; a new pool's results wait.
    assert first.count("[demo-pool-1] Leased shard") == 2
    assert first.count("[demo-pool-1] Posted run") == 2
    assert "it waits for another volunteer's pool" in first
    assert "0 of 2 shard(s) count; 2 wait for a replica" in first
    # The second, another owner's, runs the same shards as replicas and agrees.
    assert second.count("a replica verifying another pool's run") == 2
    assert second.count("it agreed with another volunteer's run of the same shard") == 2
    assert "2 of 2 shard(s) count" in second
    settings = _settings(demo_env)
    engine = create_engine(settings.resolved_database_url)
    with Session(engine) as session:
        job = session.exec(
            select(Job)
            .join(Model, col(Model.id) == Job.model_id)
            .where(Model.name == "tiny-volunteer")
        ).one()
        assert job.status == JobStatus.COMPLETED
        pools = {p.id: p for p in session.exec(select(Pool)).all()}
        owners = {u.id: u.username for u in session.exec(select(User)).all()}
        shards = session.exec(select(Shard).where(Shard.job_id == job.id)).all()
        assert len(shards) == 2
        for shard in shards:
            runs = session.exec(select(ShardRun).where(ShardRun.shard_id == shard.id)).all()
            accepted = [r for r in runs if r.id == shard.accepted_run_id]
            replicas = [r for r in runs if r.id != shard.accepted_run_id]
            assert [pools[r.pool_id].name for r in accepted] == ["demo-pool-1"]
            assert [pools[r.pool_id].name for r in replicas] == ["demo-pool-2"]
            assert accepted[0].status == RunStatus.ACCEPTED
            assert replicas[0].verdict == RunVerdict.AGREED
        demo_pools = [p for p in pools.values() if p.name.startswith("demo-pool")]
        # Volunteers' pools, not the operator's trusted local one: the rules of any pool.
        assert {p.kind for p in demo_pools} == {PoolKind.REMOTE}
        assert {owners[p.owner_id or 0] for p in demo_pools} == {
            "demo-volunteer-1",
            "demo-volunteer-2",
        }
        job_id = job.id
    assert f"Volunteers: http://127.0.0.1:{port}/jobs/{job_id} " in said
    app = create_app(settings)
    page = app.test_client().get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "tiny-volunteer" in page and "demo-pool-1" in page and "demo-pool-2" in page
    board = app.test_client().get("/api/v1/benchmarks/kisan-advisory/leaderboard").get_json()
    assert "tiny-volunteer" in {row["model"]["name"] for row in board["rows"]}
    # Each printed sign-in shows that volunteer's own pool on /account.
    sign_ins = _sign_ins(said)
    assert sorted(sign_ins) == ["demo-volunteer-1", "demo-volunteer-2"]
    for number in ("1", "2"):
        browser = app.test_client()
        sign_in(browser, f"demo-volunteer-{number}", sign_ins[f"demo-volunteer-{number}"])
        account = browser.get("/account").get_data(as_text=True)
        assert f"demo-pool-{number}" in account
        assert f"demo-pool-{3 - int(number)}" not in account
    credential = Path(demo_env["SABHA_DATA_DIR"]) / "demo" / "demo-pool-1.credential"
    assert f"--credential-file {credential} --name demo-pool-1" in said
    assert credential.stat().st_mode & 0o777 == 0o600


def test_second_demo_reuses_the_pools_and_gives_new_passwords(
    first_demo: str, demo_env: dict[str, str]
) -> None:
    credential = Path(demo_env["SABHA_DATA_DIR"]) / "demo" / "demo-pool-1.credential"
    kept = credential.read_text()
    again = _demo(demo_env, "--no-serve")
    assert "done already by the demo pools" in again and "Leased shard" not in again
    assert credential.read_text() == kept
    old, new = _sign_ins(first_demo), _sign_ins(again)
    assert old.keys() == new.keys() and not set(old.values()) & set(new.values())
    with Session(create_engine(_settings(demo_env).resolved_database_url)) as session:
        names = sorted(p.name for p in session.exec(select(Pool)).all() if p.kind != "local")
    assert names == ["demo-pool-1", "demo-pool-2"]


def test_serving_demo_answers_the_job_page_over_http_until_sigterm(
    first_demo: str, demo_env: dict[str, str]
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sabha.platform.cli", *DEMO],
        env=demo_env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
            if line.startswith("Press Ctrl+C to stop."):
                break
        said = "".join(lines)
        job_url = re.search(r"Volunteers: (\S+/jobs/\d+) ", said)
        assert job_url, said
        with urllib.request.urlopen(job_url.group(1), timeout=30) as reply:
            page = reply.read().decode()
        assert "demo-pool-1" in page and "demo-pool-2" in page
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
        assert process.returncode == 0 and "Stopped." in rest, said + rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigterm_stops_the_demo_again_after_ray_put_its_own_handler_in() -> None:
    # ray.init replaces the SIGTERM handler with sys.exit; the demo's Label Studio, started
    # after the evaluation, must still be stopped once, without a second signal cutting in.
    with stop_on_sigterm():
        ours = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(15))  # what ray.init does
        reclaim_sigterm()
        assert signal.getsignal(signal.SIGTERM) is ours
        with pytest.raises(Terminated):
            signal.raise_signal(signal.SIGTERM)
        reclaim_sigterm()  # during the clean-up, further signals stay ignored
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is not ours
