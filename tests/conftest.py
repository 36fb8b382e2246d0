"""Shared fixtures: isolated settings, SQLite and PostgreSQL databases, a fake engine."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

REPO = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get(
    "SABHA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_postgres_problem: list[str] = []


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
    """Stands in for the vLLM actor in tests of Sabha's own bookkeeping around it.

    Answers each request with ``answer(request)``; raises after
    ``fail_after_batches`` batches to simulate a crash.
    """

    def __init__(self, answer: Any = None, fail_after_batches: int | None = None) -> None:
        self.answer = answer or (lambda request: f"answer to {request['item_id']}")
        self.fail_after_batches = fail_after_batches
        self.batches: list[list[int]] = []

    def info(self) -> dict[str, Any]:
        return {"host": "test-host", "device": "scripted", "vllm": "none"}

    def submit(self, requests: list[dict[str, Any]], decoding: dict[str, Any]) -> Any:
        # Like a Ray call: the work, and any failure, shows when collected.
        return lambda: self.generate(requests, decoding)

    def collect(self, handle: Any) -> list[dict[str, Any]]:
        return handle()  # type: ignore[no-any-return]

    def generate(
        self, requests: list[dict[str, Any]], decoding: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if self.fail_after_batches is not None and len(self.batches) >= self.fail_after_batches:
            raise RuntimeError("simulated engine crash")
        self.batches.append([r["item_id"] for r in requests])
        return [
            {
                "item_id": r["item_id"],
                "prompt": r["text"],
                "text": self.answer(r),
                "finish_reason": "stop",
                "num_tokens": 3,
            }
            for r in requests
        ]


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
    (folder / spec["dataset"]["items"]).write_text(
        "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8"
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
