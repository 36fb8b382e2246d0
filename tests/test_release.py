"""Released dataset versions: Parquet named by content hash, loadable by `datasets`; data cards."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
from conftest import REPO, generation_items, run_sabha, write_benchmark
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sabha.annotation.cards import build_data_card, card_path, validate_data_card
from sabha.annotation.release import dataset_rows, release_dataset_version
from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
from sabha.platform.db import session_scope
from sabha.platform.domain import DatasetVersion
from sabha.platform.errors import ValidationFailed


@pytest.mark.parametrize("path", starter_benchmark_paths(), ids=lambda p: p.stem)
def test_release_round_trips_through_the_datasets_library(
    path: Path, sqlite_db: Engine, tmp_path: Path
) -> None:
    loaded = load_benchmark_file(path)
    with session_scope(sqlite_db) as session:
        release_dataset_version(session, loaded, tmp_path / "artifacts")
    with Session(sqlite_db) as session:
        version = session.exec(select(DatasetVersion)).one()
    parquet = Path(version.artifact_uri or "")
    assert parquet.name == f"{loaded.content_hash}.parquet"
    assert version.released_at is not None
    reloaded = datasets.load_dataset(
        "parquet", data_files=str(parquet), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert reloaded.to_list() == dataset_rows(loaded)
    card = parquet.with_suffix(".README.md").read_text(encoding="utf-8")
    assert card == version.card_markdown
    validate_data_card(card)


def test_changed_items_make_a_new_version(sqlite_db: Engine, tmp_path: Path) -> None:
    items = generation_items(4)
    first = load_benchmark_file(write_benchmark(tmp_path / "a", items))
    items[0]["reference"] = "बदला हुआ उत्तर"
    second = load_benchmark_file(write_benchmark(tmp_path / "b", items))
    assert first.content_hash != second.content_hash
    with session_scope(sqlite_db) as session:
        release_dataset_version(session, first, tmp_path / "artifacts")
        release_dataset_version(session, second, tmp_path / "artifacts")
    with Session(sqlite_db) as session:
        assert len(session.exec(select(DatasetVersion)).all()) == 2


def test_failed_release_leaves_no_files_or_rows_behind(
    sqlite_db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_benchmark_file(write_benchmark(tmp_path, generation_items(2)))
    artifacts = tmp_path / "artifacts"

    def broken_item(**_fields: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr("sabha.annotation.release.Item", broken_item)
    with pytest.raises(RuntimeError, match="database went away"):
        with session_scope(sqlite_db) as session:
            release_dataset_version(session, loaded, artifacts)
    with Session(sqlite_db) as session:
        assert session.exec(select(DatasetVersion)).all() == []
    assert [p for p in artifacts.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("path", starter_benchmark_paths(), ids=lambda p: p.stem)
def test_data_card_is_valid_and_committed_in_sync(path: Path) -> None:
    loaded = load_benchmark_file(path)
    card = validate_data_card(str(build_data_card(loaded)), path.name)
    assert card.data.license == "cc-by-4.0"
    assert set(card.data.language) == {tag.split("-")[0] for tag in loaded.spec.languages}
    assert loaded.content_hash in card.text
    committed = card_path(REPO / "data_cards", loaded.spec.dataset.name)
    assert committed.read_text(encoding="utf-8") == str(build_data_card(loaded)), (
        "data_cards/ is stale: run `sabha cards build` and commit the result"
    )


def test_card_validation_names_missing_sections() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_data_card("---\nlicense: cc-by-4.0\n---\n# Title\n## Dataset summary\nx\n")
    problems = "\n".join(caught.value.problems)
    assert "'language' is missing" in problems
    assert "'## Limitations' is missing" in problems


def test_cards_build_check_reports_stale_cards(tmp_path: Path) -> None:
    result = run_sabha("cards", "build", "--check", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "out of date" in result.stderr
    assert run_sabha("cards", "build", "--out", str(tmp_path)).returncode == 0
    assert run_sabha("cards", "build", "--check", "--out", str(tmp_path)).returncode == 0
