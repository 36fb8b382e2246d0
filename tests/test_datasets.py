"""Datasets are first-class: released from rows and card metadata, referred to as name@hash."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import yaml
from conftest import ScriptedEngine, run_sabha, run_with, write_benchmark
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sabha.annotation.cards import validate_data_card
from sabha.annotation.release import release_dataset_version
from sabha.platform.benchmarks import (
    CardText,
    DatasetContent,
    ItemSpec,
    load_benchmark_file,
    load_dataset_file,
)
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import Benchmark, DatasetVersion, Score
from sabha.platform.errors import ValidationFailed
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job

ITEMS = [
    {
        "id": "ur-001",
        "language": "ur-Arab",
        "split": "test",
        "input": {"question": "گندم کی پہلی آبپاشی کب کرنی چاہیے؟"},
        "reference": "بوائی کے تقریباً تین ہفتے بعد۔",
    },
    {
        "id": "sw-001",
        "language": "sw-Latn",
        "region": "KE-30",
        "split": "test",
        "input": {"question": "Nipande mahindi lini?"},
        "reference": "Mwanzoni mwa mvua za masika.",
    },
]
CARD = {
    "summary": "Two advisory questions.",
    "collection_process": "Written for a test.",
    "intended_use": "Tests.",
    "limitations": "Tiny.",
}


def _dataset_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rows.jsonl").write_text(
        "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in ITEMS), encoding="utf-8"
    )
    spec = {
        "name": "mashamba",
        "title": "Mashamba",
        "license": "CC-BY-4.0",
        "task": "generation",
        "languages": ["ur-Arab", "sw-Latn"],
        "items": "rows.jsonl",
        "card": CARD,
    }
    path = folder / "mashamba.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return path


def _referring_benchmark(folder: Path, reference: str, **overrides: object) -> Path:
    return write_benchmark(
        folder, [], dataset=reference, languages=["ur-Arab", "sw-Latn"], **overrides
    )


def test_dataset_file_is_released_and_listed_from_the_cli(tmp_path: Path) -> None:
    assert run_sabha("db", "upgrade").returncode == 0
    released = run_sabha("datasets", "release", str(_dataset_file(tmp_path / "d")))
    assert released.returncode == 0, released.stderr
    reference = load_dataset_file(tmp_path / "d" / "mashamba.yaml")
    expected = f"mashamba@{reference.content_hash}"
    assert f"released  {expected} (2 items)" in released.stdout
    assert expected in run_sabha("datasets", "list").stdout
    again = run_sabha("datasets", "release", str(tmp_path / "d" / "mashamba.yaml"))
    assert f"unchanged {expected}" in again.stdout


def test_rows_released_without_any_file(sqlite_db: Engine, tmp_path: Path) -> None:
    content = DatasetContent(
        name="mashamba",
        title="Mashamba",
        license="CC-BY-4.0",
        task="generation",
        languages=["ur-Arab", "sw-Latn"],
        labels=[],
        attributes={},
        card=CardText(**CARD),
        items=[ItemSpec.model_validate(item) for item in ITEMS],
        source="annotation",
        input_fields=["question"],
    )
    with session_scope(sqlite_db) as session:
        version, created = release_dataset_version(session, content, tmp_path / "artifacts")
        assert created and version.content_hash == content.content_hash
        parquet = Path(version.artifact_uri or "")
    rows = datasets.load_dataset(
        "parquet", data_files=str(parquet), split="train", cache_dir=str(tmp_path / "cache")
    ).to_list()
    assert [(r["id"], r["language"]) for r in rows] == [
        ("sw-001", "sw-Latn"),
        ("ur-001", "ur-Arab"),
    ]
    card = validate_data_card(parquet.with_suffix(".README.md").read_text(encoding="utf-8"))
    assert "sabha-dataset" in card.data.tags
    assert "mashamba@<version>" in card.text


def test_benchmark_refers_to_a_released_version(sqlite_db: Engine, tmp_path: Path) -> None:
    data_set = load_dataset_file(_dataset_file(tmp_path / "d"))
    with session_scope(sqlite_db) as session:
        release_dataset_version(session, data_set, tmp_path / "artifacts")
    loaded = load_benchmark_file(
        _referring_benchmark(tmp_path / "b", f"mashamba@{data_set.content_hash}")
    )
    assert loaded.items == [] and loaded.content_hash == data_set.content_hash
    with session_scope(sqlite_db) as session:
        benchmark, state = register_benchmark(session, loaded, tmp_path / "artifacts")
        assert state == "loaded"
        model = add_model(session, "m", repo_id="org/m", revision="a" * 40)
        job_id = create_job(session, model, benchmark)[0].id
    run_with(sqlite_db, [job_id], ScriptedEngine())  # type: ignore[list-item]
    with Session(sqlite_db) as session:
        assert len(session.exec(select(DatasetVersion)).all()) == 1
        groups = {s.group for s in session.exec(select(Score)) if s.breakdown == "language"}
        assert groups == {"ur-Arab", "sw-Latn"}


def test_bad_references_are_refused_naming_the_field(sqlite_db: Engine, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="field 'dataset'.*not a dataset reference"):
        load_benchmark_file(_referring_benchmark(tmp_path / "a", "mashamba@latest"))
    unknown = load_benchmark_file(_referring_benchmark(tmp_path / "b", "mashamba@" + "0" * 64))
    with pytest.raises(ValidationFailed, match="no released version mashamba@0000"):
        with session_scope(sqlite_db) as session:
            register_benchmark(session, unknown, tmp_path / "artifacts")
    data_set = load_dataset_file(_dataset_file(tmp_path / "d"))
    with session_scope(sqlite_db) as session:
        release_dataset_version(session, data_set, tmp_path / "artifacts")
    misfit = load_benchmark_file(
        _referring_benchmark(
            tmp_path / "c",
            f"mashamba@{data_set.content_hash}",
            prompt={"template": "{question} ({crop})"},
        )
    )
    with pytest.raises(ValidationFailed) as caught:
        with session_scope(sqlite_db) as session:
            register_benchmark(session, misfit, tmp_path / "artifacts")
    assert "mashamba item 'ur-001': field 'input': missing ['crop']" in str(caught.value)
    with Session(sqlite_db) as session:
        assert session.exec(select(Benchmark)).all() == []
