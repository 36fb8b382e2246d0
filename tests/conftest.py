"""Shared fixtures: isolated settings, SQLite and PostgreSQL databases, a fake engine."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from labelstudio_fixture import labelstudio, labelstudio_template  # noqa: F401
from sqlalchemy.engine import Engine

REPO = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get(
    "SABHA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_postgres_problem: list[str] = []

# Ray keeps its token authentication on; every Ray these tests start, in this
# process or in a subprocess, uses one token. Ray reads the token of the first
# session in a process once and keeps it, so a later session whose token came
# from another HOME (tests give Ray a temporary one) would refuse the process.
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))

# Tests stop agents and `sabha eval` with Ctrl-C (SIGINT). A shell starts a
# background job with SIGINT ignored, and an ignored signal stays ignored in
# every child: the agents would never stop. Handle it, so children get the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data dir and the default (SQLite) database."""
    data_dir = tmp_path / "sabha-data"
    monkeypatch.setenv("SABHA_DATA_DIR", str(data_dir))
    monkeypatch.delenv("SABHA_DATABASE_URL", raising=False)
    return data_dir


def _postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per session)."""
    if not _postgres_problem:
        try:
            engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            engine.dispose()
            _postgres_problem.append("")
        except Exception as exc:  # any failure means: not reachable here
            _postgres_problem.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    return _postgres_problem[0] or None


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new schema in PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    problem = _postgres_reachable()
    if problem:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL} ({problem})")
    schema = f"sabha_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    """A migrated database engine (SQLite and PostgreSQL)."""
    from sabha.platform.db import make_engine, upgrade_database

    engine = make_engine(database_url)
    upgrade_database(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database, for tests that are not about the database."""
    from sabha.platform.db import make_engine, upgrade_database

    engine = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    upgrade_database(engine)
    yield engine
    engine.dispose()


class ScriptedEngine:
    """Stands in for the vLLM engine in tests of Sabha's own bookkeeping around it.

    Implements the local pool's engine interface (``generate_shards``):
    answers each request with ``answer(request)``; raises after
    ``fail_after_shards`` shards to simulate a crash; ``errors`` maps item ids
    to per-item error reasons.
    """

    def __init__(
        self,
        answer: Any = None,
        fail_after_shards: int | None = None,
        errors: dict[int, str] | None = None,
    ) -> None:
        self.answer = answer or (lambda request: f"answer to {request.item_id}")
        self.fail_after_shards = fail_after_shards
        self.errors = errors or {}
        self.shards: list[list[int]] = []
        self.closed = False

    def info(self) -> Any:
        from sabha.platform.wire import EngineInfo

        return EngineInfo(host="test-host", device="scripted", vllm="none")

    def generate_shards(self, work: Any, max_in_flight: int = 256) -> Any:
        from sabha.platform.wire import GenerationResult

        for key, requests, _decoding, _policy in work:
            if self.fail_after_shards is not None and len(self.shards) >= self.fail_after_shards:
                raise RuntimeError("simulated engine crash")
            self.shards.append([r.item_id for r in requests])
            yield (
                key,
                [
                    GenerationResult(
                        item_id=r.item_id,
                        prompt=r.text,
                        error=self.errors.get(r.item_id),
                        text="" if r.item_id in self.errors else self.answer(r),
                        finish_reason="stop",
                        num_tokens=3,
                    )
                    for r in requests
                ],
            )

    def close(self) -> None:
        self.closed = True


def run_with(db: Engine, job_ids: list[int], engine: Any, **options: Any) -> None:
    """Run jobs through the local pool with a scripted engine."""
    from sabha.platform.services.evaluate import run_local_pool

    options.setdefault("pool_name", "test-pool")
    run_local_pool(db, job_ids, lambda _model, _length: engine, **options)


@pytest.fixture
def scripted_engine() -> type[ScriptedEngine]:
    return ScriptedEngine


def run_sabha(
    *args: str, env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """Run the ``sabha`` CLI as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "sabha.platform.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=REPO,
    )


def write_benchmark(folder: Path, items: list[dict[str, Any]], **overrides: Any) -> Path:
    """Write a small generation benchmark (YAML + JSONL) and return the YAML path."""
    import json

    import yaml

    spec: dict[str, Any] = {
        "name": "tiny-gen",
        "title": "Tiny generation",
        "description": "A test benchmark.",
        "task": "generation",
        "languages": ["hi-Deva", "sw-Latn"],
        "dataset": {
            "name": "tiny-gen",
            "items": "tiny-gen.jsonl",
            "license": "CC-BY-4.0",
            "card": {
                "summary": "Test items.",
                "collection_process": "Written for a test.",
                "intended_use": "Tests.",
                "limitations": "Tiny.",
            },
        },
        "prompt": {"template": "Question: {question}\nAnswer:"},
        "metrics": ["chrf++", "bleu"],
        "primary_metric": "chrf++",
        "breakdowns": ["language"],
        "decoding": {"max_tokens": 8},
    }
    spec.update(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny-gen.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    if isinstance(spec["dataset"], dict):  # else a reference to a released version
        (folder / spec["dataset"]["items"]).write_text(
            "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items),
            encoding="utf-8",
        )
    return path


def generation_items(n: int = 6) -> list[dict[str, Any]]:
    """``n`` small Hindi/Swahili generation items."""
    texts = [
        ("hi-Deva", "गेहूं की सिंचाई कब करें?", "पहली सिंचाई बुवाई के तीन सप्ताह बाद करें।"),
        ("sw-Latn", "Nipande mahindi lini?", "Panda mwanzoni mwa mvua za masika."),
    ]
    items = []
    for i in range(n):
        language, question, reference = texts[i % 2]
        items.append(
            {
                "id": f"t-{i:03d}",
                "language": language,
                "split": "test",
                "input": {"question": question},
                "reference": reference,
            }
        )
    return items
