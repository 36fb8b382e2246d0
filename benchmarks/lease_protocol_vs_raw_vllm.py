"""Throughput through the lease protocol against one raw `vllm.LLM.generate` call.

Both sides generate the same prompts as ``throughput_vs_raw_vllm.py`` (the
kisan-advisory test items, repeated, rendered the same way, greedy, the tiny
random-weight Llama made by ``prepare`` there):

- raw: one ``LLM.generate`` call over all prompts, in a child process of this
  script that holds the engine between rounds;
- lease protocol: one platform (gunicorn with ``infra/gunicorn.conf.py`` on
  127.0.0.1, a SQLite file) and one real ``sabha worker run`` agent with its
  vLLM engine (Ray actor, not the stand-in). Each round registers the same
  items as a new benchmark (untimed) and creates its job; the clock runs
  from the job's creation until every shard has an accepted run, and until
  the job is scored. The time from the first lease is printed too, and the
  idle agent's wait before it (the agent long-polls: its batch lease call
  waits on the platform until work is queued, so the wait is the platform's
  queue probe, at most every 0.25 s, and one lease call).

Both engines are started and warmed up first (the raw one with one full pass,
the agent's with a warm-up job of the same items that it finishes), then the
sides run in alternating rounds; only one engine generates at a time (the
other is idle). Replication is off (each shard runs once) and rate limits are
off, as in ``scale_out.py``. Tokens/s come from the generated token counts
(``Output.num_tokens`` of the accepted runs on the lease side).

Usage:
    .venv/bin/python benchmarks/lease_protocol_vs_raw_vllm.py [--rounds 3] [--repeat 4]
    .venv/bin/python benchmarks/lease_protocol_vs_raw_vllm.py --quick   # smoke run

Goal: the lease protocol >= 0.95x raw vLLM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from settings_changed import (  # noqa: E402
    LOCAL_MODELS_SHARED,
    NO_RATE_LIMITS,
    NO_VERIFICATION,
    announce,
)
from throughput_vs_raw_vllm import MAX_TOKENS, prepare  # noqa: E402  (the same model and prompts)

CHANGED = {**NO_VERIFICATION, **NO_RATE_LIMITS, **LOCAL_MODELS_SHARED}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scalar(engine: sa.Engine, sql: str, **params: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(sql), params).scalar() or 0)


# -- raw side: one LLM in a child process ---------------------------------------------


def _raw_engine(connection: Connection, model: str, prompts: list[str], max_tokens: int) -> None:
    """Child process: start the engine, warm it up, then one ``generate`` per "go"."""
    os.setpgrp()  # vLLM's engine processes join this group; ``close`` ends them all
    from vllm import LLM, SamplingParams

    from sabha.platform.wire import DecodingParams
    from sabha.workers.engine import engine_options

    decoding = DecodingParams(max_tokens=max_tokens)
    llm = LLM(**engine_options(model))
    params = SamplingParams(
        temperature=decoding.temperature,
        max_tokens=decoding.max_tokens,
        seed=decoding.seed,
        ignore_eos=decoding.ignore_eos,
    )

    texts: dict[str, str] = {}

    def generate() -> tuple[float, int]:
        start = time.perf_counter()
        outputs = llm.generate(prompts, params, use_tqdm=False)
        elapsed = time.perf_counter() - start
        answers = zip(prompts, outputs, strict=True)
        texts.update((prompt, o.outputs[0].text) for prompt, o in answers)
        return elapsed, sum(len(o.outputs[0].token_ids) for o in outputs)

    generate()  # warm-up
    connection.send("ready")
    while (command := connection.recv()) in ("go", "texts"):
        connection.send(generate() if command == "go" else texts)


class RawSide:
    """The raw engine's child process; ``round()`` returns (seconds, tokens)."""

    def __init__(self, model: Path, prompts: list[str], max_tokens: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        # Not a daemon: vLLM starts its own engine process.
        self.process = context.Process(
            target=_raw_engine, args=(child, str(model), prompts, max_tokens)
        )
        self.process.start()
        if self.connection.recv() != "ready":
            raise SystemExit("the raw engine did not start")

    def round(self) -> tuple[float, int]:
        self.connection.send("go")
        seconds, tokens = self.connection.recv()
        return float(seconds), int(tokens)

    def texts(self) -> dict[str, str]:
        """The raw engine's answer to each prompt (its last round's)."""
        self.connection.send("texts")
        return dict(self.connection.recv())

    def close(self) -> None:
        """Stop the child and vLLM's engine processes it started (they outlive it otherwise)."""
        if self.process.is_alive():
            self.connection.send("stop")
            self.process.join(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.join(timeout=10)


# -- lease side: platform + one agent --------------------------------------------------


class LeaseSide:
    """A platform under gunicorn and one real ``sabha worker run`` agent on the tiny model."""

    def __init__(self, root: Path, model: Path, repeat: int, shard_size: int) -> None:
        self.texts: dict[str, str] = {}  # the last round's accepted answer to each prompt
        from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
        from sabha.platform.catalog import add_model
        from sabha.platform.db import make_engine, session_scope, upgrade_database
        from sabha.platform.domain import Role
        from sabha.platform.services.accounts import create_pool_credential, create_user
        from sabha.platform.settings import Settings

        self.root = root
        self.shard_size = shard_size
        self.url = f"sqlite:///{root / 'sabha.db'}"
        self.db = make_engine(self.url)
        upgrade_database(self.db)
        self.settings = Settings(data_dir=root / "data", database_url=self.url)
        path = next(p for p in starter_benchmark_paths() if "kisan" in p.name)
        import yaml

        source = load_benchmark_file(path)
        self.raw_yaml = yaml.safe_load(path.read_text(encoding="utf-8"))
        # One limit for every prompt on both sides, as raw vLLM's: the benchmark's own
        # per-language budgets would make the lease side generate far more tokens.
        self.raw_yaml["decoding"] = {"max_tokens": MAX_TOKENS}
        self.rows = [
            {**item.model_dump(mode="json"), "id": f"{item.id}-{copy}"}
            for copy in range(repeat)
            for item in source.items
            if item.split == "test"
        ]
        with session_scope(self.db) as session:
            user = create_user(session, "donor", roles=[Role.VOLUNTEER])
            credential, secret = create_pool_credential(session, user, "bench")
            client_id = credential.client_id
            self.model_id = add_model(session, "tiny", path=model).id
        self.jobs = 0
        port = _free_port()
        env = {
            **os.environ,
            "SABHA_DATA_DIR": str(root / "data"),
            "SABHA_DATABASE_URL": self.url,
            "SABHA_BIND": f"127.0.0.1:{port}",
            "SABHA_WORKERS": "2",
            "SABHA_THREADS": "8",
            **CHANGED,
        }
        self.server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(REPO / "infra" / "gunicorn.conf.py")],
            cwd=REPO,
            env=env,
            stdout=(root / "gunicorn.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.agent: subprocess.Popen[bytes] | None = None
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/api/v1/benchmarks", timeout=5)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or self.server.poll() is not None:
                    raise SystemExit(
                        f"gunicorn did not start; see {root / 'gunicorn.log'}"
                    ) from None
                time.sleep(0.2)
        agent_env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("SABHA_DATABASE_URL", "SABHA_POOL_CLIENT_ID", "SABHA_POOL_CLIENT_SECRET")
        }
        agent_env.update(
            SABHA_DATA_DIR=str(root / "agent"),
            SABHA_POOL_CLIENT_ID=client_id,
            SABHA_POOL_CLIENT_SECRET=secret,
        )
        self.agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sabha.platform.cli",
                "worker",
                "run",
                "--server",
                f"http://127.0.0.1:{port}",
                "--name",
                "bench",
                # Long-polls for work when idle (batch leases); exits after 30 s idle.
                "--exit-when-idle",
            ],
            cwd=REPO,
            env=agent_env,
            stdout=(root / "agent.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait("the agent registers", lambda: _scalar(self.db, "SELECT count(*) FROM pool"))

    def _wait(self, what: str, done: Any, seconds: float = 900) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            assert self.agent is not None
            if self.agent.poll() is not None or self.server.poll() is not None:
                raise SystemExit(f"a process exited while {what}; see {self.root}/*.log")
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out while {what}; see {self.root}/*.log")
            time.sleep(0.02)

    def _benchmark(self) -> int:
        """The repeated items as a new benchmark (a new job for the same model)."""
        import yaml

        from sabha.platform.benchmarks import load_benchmark_file
        from sabha.platform.db import session_scope
        from sabha.platform.services.benchmarks import register_benchmark

        self.jobs += 1
        folder = self.root / f"bench-{self.jobs}"
        folder.mkdir()
        raw = {
            **self.raw_yaml,
            "version": str(self.jobs),
            "dataset": {
                **self.raw_yaml["dataset"],
                "name": f"kisan-repeated-{self.jobs}",
                "items": "items.jsonl",
            },
        }
        # Item ids of their own: the same items under the same ids would be the same
        # generation identity, so the same (finished) job.
        rows = [{**r, "id": f"{r['id']}-{self.jobs}"} for r in self.rows]
        (folder / "items.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
        (folder / "bench.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
        with session_scope(self.db) as session:
            benchmark, _ = register_benchmark(
                session,
                load_benchmark_file(folder / "bench.yaml"),
                self.settings.resolved_artifacts_dir,
            )
            return int(benchmark.id)  # type: ignore[arg-type]

    def round(self) -> dict[str, float]:
        """One job: seconds to accepted, to scored, from the first lease; tokens."""
        from sabha.platform.db import session_scope
        from sabha.platform.domain import Benchmark, Model
        from sabha.platform.services.queue import create_job

        benchmark_id = self._benchmark()
        with session_scope(self.db) as session:
            model = session.get(Model, self.model_id)
            benchmark = session.get(Benchmark, benchmark_id)
            start = time.monotonic()
            job, created = create_job(session, model, benchmark, self.shard_size)  # type: ignore[arg-type]
            job_id = job.id
        if not created:
            raise SystemExit(f"job {job_id} existed already: nothing would be measured")
        leased = [0.0]

        def accepted() -> bool:
            if not leased[0] and _scalar(
                self.db, "SELECT count(*) FROM shard_run WHERE job_id = :j", j=job_id
            ):
                leased[0] = time.monotonic()
            return not _scalar(
                self.db,
                "SELECT count(*) FROM shard WHERE job_id = :j AND accepted_run_id IS NULL",
                j=job_id,
            )

        self._wait(f"job {job_id} runs", accepted)
        done = time.monotonic()
        self._wait(
            f"job {job_id} is scored",
            lambda: _scalar(
                self.db,
                "SELECT count(*) FROM score JOIN scoring_run ON scoring_run.id = "
                "score.scoring_run_id WHERE scoring_run.job_id = :j",
                j=job_id,
            ),
        )
        scored = time.monotonic()
        tokens = _scalar(
            self.db,
            "SELECT sum(output.num_tokens) FROM output JOIN shard ON "
            "shard.accepted_run_id = output.shard_run_id WHERE shard.job_id = :j",
            j=job_id,
        )
        with self.db.connect() as connection:
            self.texts = {
                prompt: text
                for prompt, text in connection.execute(
                    sa.text(
                        "SELECT output.prompt, output.text FROM output JOIN shard ON "
                        "shard.accepted_run_id = output.shard_run_id WHERE shard.job_id = :j"
                    ),
                    {"j": job_id},
                )
            }
        return {
            "accepted": done - start,
            "scored": scored - start,
            "from first lease": done - (leased[0] or start),
            "tokens": tokens,
            "shards": _scalar(self.db, "SELECT count(*) FROM shard WHERE job_id = :j", j=job_id),
            "runs": _scalar(self.db, "SELECT count(*) FROM shard_run WHERE job_id = :j", j=job_id),
        }

    def close(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            os.killpg(self.agent.pid, signal.SIGINT)
            try:
                self.agent.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.agent.pid, signal.SIGKILL)
        os.killpg(self.server.pid, signal.SIGTERM)
        self.server.wait(timeout=30)
        self.db.dispose()


# -- the measurement -------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="Measured rounds per side.")
    parser.add_argument("--repeat", type=int, default=4, help="Copies of the 108 test prompts.")
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="Smoke run: 108 prompts, 1 round.")
    parser.add_argument(
        "--keep-logs", action="store_true", help="Keep the platform's and agent's logs."
    )
    args = parser.parse_args()
    announce(
        CHANGED,
        "throughput counts each shard once; one agent outruns the per-token limit; "
        "the agent shares the platform's disk, where the tiny model is",
    )
    if args.quick:
        args.rounds, args.repeat = 1, 1
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    load = os.getloadavg()

    import vllm

    root = Path(tempfile.mkdtemp(prefix="sabha-lease-vs-raw-", dir="/tmp"))
    model, shards, prompts = prepare(root, args.repeat, args.shard_size)
    max_tokens = shards[0][2].max_tokens
    raw: RawSide | None = None
    lease: LeaseSide | None = None
    finished = False
    rates: dict[str, list[float]] = {
        "raw vllm.LLM.generate": [],
        "lease protocol, creation to accepted": [],
        "lease protocol, creation to scored": [],
        "lease protocol, first lease to accepted": [],
    }
    waits: list[float] = []
    try:
        raw = RawSide(model, prompts, max_tokens)
        print("raw engine started and warmed up", flush=True)
        lease = LeaseSide(root, model, args.repeat, args.shard_size)
        warm = lease.round()
        print(
            f"agent warmed up: warm-up job ({int(warm['shards'])} shards) "
            f"in {warm['accepted']:.1f} s",
            flush=True,
        )
        for round_ in range(args.rounds):
            for side in ("raw", "lease") if round_ % 2 == 0 else ("lease", "raw"):
                if side == "raw":
                    seconds, tokens = raw.round()
                    rates["raw vllm.LLM.generate"].append(tokens / seconds)
                    print(f"round {round_ + 1} raw: {seconds:.2f} s, {tokens} tokens", flush=True)
                else:
                    got = lease.round()
                    tokens = int(got["tokens"])
                    for key, name in (
                        ("accepted", "lease protocol, creation to accepted"),
                        ("scored", "lease protocol, creation to scored"),
                        ("from first lease", "lease protocol, first lease to accepted"),
                    ):
                        rates[name].append(tokens / got[key])
                    waits.append(got["accepted"] - got["from first lease"])
                    print(
                        f"round {round_ + 1} lease: {got['accepted']:.2f} s to accepted, "
                        f"{got['scored']:.2f} s to scored, {got['from first lease']:.2f} s "
                        f"from the first lease, {tokens} tokens, {int(got['shards'])} shards, "
                        f"{int(got['runs'])} leases",
                        flush=True,
                    )
        raw_texts = raw.texts()
        same = sum(lease.texts.get(prompt) == text for prompt, text in raw_texts.items())
        identical = f"{same}/{len(raw_texts)} prompts"
        finished = True
    finally:
        if lease is not None:
            lease.close()
        if raw is not None:
            raw.close()
        if finished and not args.keep_logs:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"logs kept in {root}", file=sys.stderr)

    print(
        f"prompts: {len(prompts)}, max_tokens: {max_tokens}, shards of {args.shard_size}, "
        f"vllm {vllm.__version__}, {os.cpu_count()} CPU cores, load average at start "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {args.rounds} round(s) after warm-up"
    )
    raw_rates = rates["raw vllm.LLM.generate"]
    for name, values in rates.items():
        print(
            f"{name:40} median {statistics.median(values):9.1f} tokens/s  rounds: "
            + " ".join(f"{v:.1f}" for v in values)
        )
    print("idle agent's wait before the first lease: " + " ".join(f"{w:.2f} s" for w in waits))
    print(f"lease protocol outputs (last round) identical to raw vLLM's: {identical}")
    for name, values in list(rates.items())[1:]:
        ratios = [v / r for v, r in zip(values, raw_rates, strict=True)]
        print(
            f"{name} / raw: median {statistics.median(ratios):.3f}  rounds: "
            + " ".join(f"{r:.3f}" for r in ratios)
        )
    ratio = statistics.median(
        v / r for v, r in zip(rates["lease protocol, creation to accepted"], raw_rates, strict=True)
    )
    print(
        f"lease protocol (to accepted) vs raw: {ratio:.3f} (goal >= 0.95): "
        f"{'met' if ratio >= 0.95 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
