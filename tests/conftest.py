"""Shared fixtures: isolated settings, SQLite and PostgreSQL databases, a fake engine."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from browsertools import browser  # noqa: F401
from labelstudio_fixture import labelstudio, labelstudio_private, labelstudio_template  # noqa: F401
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


# Argon2id at its cheapest for every test and every process the tests start: the
# production profile costs a quarter of a second and 64 MiB per hash. One test
# (test_accounts.py) checks that production uses the strong parameters.
os.environ["SABHA_PASSWORD_HASHING"] = "fast-insecure-for-tests"


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


def _require_postgres() -> None:
    problem = _postgres_reachable()
    if problem:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL} ({problem})")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests about the database (marked ``postgresql``) run on SQLite and PostgreSQL;
    every other database test runs on SQLite only."""
    if "database_kind" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("postgresql") is not None
        metafunc.parametrize(
            "database_kind", ["sqlite", "postgresql"] if both else ["sqlite"], indirect=True
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the real Label Studio server carry the ``labelstudio`` marker."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if {"labelstudio", "labelstudio_private", "labelstudio_template"} & set(fixtures):
            item.add_marker(pytest.mark.labelstudio)


@pytest.fixture
def database_kind(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql`` (see pytest_generate_tests)."""
    kind = str(request.param)
    if kind == "postgresql":
        _require_postgres()
    return kind


def _admin_engine() -> Engine:
    return sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")


def _postgres_url(database: str) -> str:
    return (
        sa.engine.make_url(POSTGRES_URL)
        .set(database=database)
        .render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the newest revision, once per test session."""
    from sabha.platform.db import make_engine, upgrade_database

    path = tmp_path_factory.mktemp("db-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_database(engine)
    engine.dispose()  # the last connection folds the write-ahead log into the file
    return path


def _drop_database(admin: Engine, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def _postgres_template() -> Iterator[str]:
    """A PostgreSQL database migrated once per test session: the template of every test's."""
    from sabha.platform.db import make_engine, upgrade_database

    _require_postgres()
    name = f"sabha_template_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        engine = make_engine(_postgres_url(name))
        upgrade_database(engine)
        engine.dispose()  # CREATE DATABASE ... TEMPLATE needs the template idle
        yield name
    finally:
        _drop_database(admin, name)
        admin.dispose()


@pytest.fixture
def database_url(database_kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new schema in PostgreSQL."""
    if database_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
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
def migrated_url(
    database_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh database at the newest revision, copied from the session's template
    (a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL)."""
    if database_kind == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("_postgres_template")
    name = f"sabha_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as connection:  # about half the time of migrating
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield _postgres_url(name)
    finally:
        _drop_database(admin, name)
        admin.dispose()


@pytest.fixture
def db(migrated_url: str) -> Iterator[Engine]:
    """A migrated database engine (SQLite; PostgreSQL too for tests marked ``postgresql``)."""
    from sabha.platform.db import make_engine

    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path, _sqlite_template: Path) -> Iterator[Engine]:
    """A migrated SQLite database, for tests that are not about the database."""
    from sabha.platform.db import make_engine

    path = tmp_path / "app.db"
    shutil.copyfile(_sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
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

        for shard in work:
            if shard is None:  # the caller has nothing yet
                continue
            key, requests, _decoding, _policy = shard
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
    from sabha.platform.services.local_pool import run_local_pool

    options.setdefault("pool_name", "test-pool")
    run_local_pool(db, job_ids, lambda *_placement: engine, **options)


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


def in_threads(work: Callable[[Any], None], args: Iterable[Any], timeout: float = 120) -> None:
    """Run ``work(arg)`` for every arg, each in a thread of its own, all at once; re-raise
    the first error any of them met (after every thread ended or timed out)."""
    import threading

    errors: list[BaseException] = []

    def run(arg: Any) -> None:
        try:
            work(arg)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(arg,)) for arg in args]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish in time"
    if errors:
        raise errors[0]
