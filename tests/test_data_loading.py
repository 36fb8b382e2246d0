"""Loading data as a careful maintainer would want: names and licences kept, every
refusal placed by file and line, several files loaded all together or not at all."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import generation_items, write_benchmark
from sqlmodel import Session, select

from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
from sabha.platform.cli import cli
from sabha.platform.db import make_engine
from sabha.platform.domain import Benchmark, Dataset, DatasetVersion
from sabha.platform.errors import ValidationFailed

pytestmark = pytest.mark.postgresql


@pytest.fixture
def sabha(migrated_url: str, isolated_settings: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CLI runner on a migrated database with its own data directory."""
    monkeypatch.setenv("SABHA_DATABASE_URL", migrated_url)
    return CliRunner()


def _run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli, list(args))


def _ok(runner: CliRunner, *args: str) -> str:
    result = _run(runner, *args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def _fails(runner: CliRunner, *args: str) -> str:
    result = _run(runner, *args)
    assert result.exit_code == 1, (result.output, result.exception)
    return result.output


def _starter(name: str) -> Path:
    return next(p for p in starter_benchmark_paths() if p.stem == name)


def _copy_of_kisan(folder: Path, **changes: object) -> Path:
    """The starter kisan-advisory file and items in ``folder``, with top-level or
    ``dataset.``-prefixed fields changed."""
    folder.mkdir(parents=True, exist_ok=True)
    source = _starter("kisan-advisory")
    shutil.copy(source.with_suffix(".jsonl"), folder / "kisan-advisory.jsonl")
    spec = yaml.safe_load(source.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if key.startswith("dataset."):
            spec["dataset"][key.removeprefix("dataset.")] = value
        else:
            spec[key] = value
    path = folder / "copy.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _line_of(path: Path, text: str) -> int:
    """The first line that starts with ``text`` once indentation is stripped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.strip().startswith(text))


def _datasets(url: str) -> list[tuple[str, str, str]]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            rows = session.exec(
                select(Dataset, DatasetVersion).join(
                    DatasetVersion,
                    DatasetVersion.dataset_id == Dataset.id,  # type: ignore[arg-type]
                )
            ).all()
            return sorted((d.name, v.content_hash, d.license) for d, v in rows)
    finally:
        engine.dispose()


# -- 13: a dataset is its name and its items -------------------------------------------------


def test_same_items_under_another_name_keep_their_name_and_licence(
    sabha: CliRunner, migrated_url: str, tmp_path: Path, isolated_settings: Path
) -> None:
    _ok(sabha, "benchmarks", "load", str(_starter("kisan-advisory")))
    changes = {"name": "kisan-copy", "dataset.name": "kisan-copy", "dataset.license": "CC0-1.0"}
    copy = _copy_of_kisan(tmp_path / "copy", **changes)
    _ok(sabha, "benchmarks", "load", str(copy))
    digest = load_benchmark_file(copy).content_hash
    listing = _ok(sabha, "datasets", "list")
    assert re.search(rf"kisan-advisory@{digest} .* CC-BY-4\.0", listing)
    assert re.search(rf"kisan-copy@{digest} .* CC0-1\.0", listing)
    assert _datasets(migrated_url) == [
        ("kisan-advisory", digest, "CC-BY-4.0"),
        ("kisan-copy", digest, "CC0-1.0"),
    ]
    card = isolated_settings / "artifacts" / "datasets" / "kisan-copy" / f"{digest}.README.md"
    assert "license: cc0-1.0" in card.read_text(encoding="utf-8")
    engine = make_engine(migrated_url)
    with Session(engine) as session:
        copy_benchmark = session.exec(select(Benchmark).where(Benchmark.name == "kisan-copy")).one()
        version = session.get(DatasetVersion, copy_benchmark.dataset_version_id)
        dataset = session.get(Dataset, version.dataset_id if version else None)
        assert dataset is not None and dataset.name == "kisan-copy"
    engine.dispose()


def test_another_licence_for_a_released_dataset_is_refused_naming_the_line(
    sabha: CliRunner, migrated_url: str, tmp_path: Path
) -> None:
    _ok(sabha, "benchmarks", "load", str(_starter("kisan-advisory")))
    before = _datasets(migrated_url)
    relicensed = _copy_of_kisan(tmp_path / "relicensed", **{"dataset.license": "CC0-1.0"})
    output = _fails(sabha, "benchmarks", "load", str(relicensed))
    line = _line_of(relicensed, "license: CC0-1.0")
    assert f"{relicensed}:{line}: field 'dataset.license': 'CC0-1.0'" in output
    assert "released under 'CC-BY-4.0'" in output and "another dataset name" in output
    assert _datasets(migrated_url) == before


def test_other_card_text_for_a_released_version_is_refused(
    sabha: CliRunner, migrated_url: str, tmp_path: Path
) -> None:
    _ok(sabha, "benchmarks", "load", str(_starter("kisan-advisory")))
    card = yaml.safe_load(_starter("kisan-advisory").read_text(encoding="utf-8"))["dataset"]["card"]
    card["limitations"] = "None at all."
    rewritten = _copy_of_kisan(tmp_path / "card", **{"dataset.card": card})
    output = _fails(sabha, "benchmarks", "load", str(rewritten))
    line = _line_of(rewritten, "limitations: None at all.")
    assert f"{rewritten}:{line}: field 'dataset.card.limitations': differs from the card" in output
    assert "field 'dataset.card.summary'" not in output


# -- 15: every refusal has its line; several files load together or not at all ------------


def test_yaml_field_refusals_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: tiny-cls\n"  # 1
        "title: " + "T" * 201 + "\n"  # 2
        "description: d\n"  # 3
        "task: classification\n"  # 4
        "languages: [hi-Deva]\n"  # 5
        "labels:\n"  # 6
        "  - safe\n"  # 7
        "  - ''\n"  # 8
        "attributes:\n"  # 9
        "  Hazard: [a]\n"  # 10
        "dataset:\n"  # 11
        "  name: tiny-cls\n"  # 12
        "  items: tiny.jsonl\n"  # 13
        "  license: " + "L" * 51 + "\n"  # 14
        "  card: {summary: s, collection_process: c, intended_use: i, limitations: l}\n"  # 15
        "prompt: {template: '{prompt}'}\n"  # 16
        "metrics: [accuracy]\n"  # 17
        "primary_metric: accuracy\n",  # 18
        encoding="utf-8",
    )
    with pytest.raises(ValidationFailed) as caught:
        load_benchmark_file(path)
    problems = caught.value.problems
    for line, field in [
        (2, "title"),
        (8, "labels.1"),
        (10, "attributes"),
        (14, "dataset.license"),
    ]:
        assert any(p.startswith(f"{path}:{line}: field '{field}") for p in problems), (
            field,
            problems,
        )
    assert all(re.match(rf"{re.escape(str(path))}:\d+: field '", p) for p in problems), problems


def test_a_field_written_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = write_benchmark(tmp_path, generation_items(2))
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "title: Another title\n", encoding="utf-8")
    last = len(path.read_text(encoding="utf-8").splitlines())
    first = _line_of(path, "title: Tiny generation")
    with pytest.raises(ValidationFailed) as caught:
        load_benchmark_file(path)
    assert caught.value.problems == [
        f"{path}:{last}: field 'title': written twice (lines {first} and {last}); "
        "YAML keeps only the last: remove one"
    ]


def test_validate_refuses_two_files_with_one_benchmark_name(
    sabha: CliRunner, tmp_path: Path
) -> None:
    first = write_benchmark(tmp_path / "a", generation_items(2))
    second = write_benchmark(tmp_path / "b", generation_items(4))
    output = _fails(sabha, "benchmarks", "validate", str(first), str(second))
    lines = first.read_text(encoding="utf-8").splitlines()
    top = next(n for n, line in enumerate(lines, 1) if line.startswith("name:"))
    assert (
        f"{second}:{top}: field 'name': 'tiny-gen' is also the name in {first}:{top}; "
    ) in output
    assert "ok " not in output


def test_load_of_several_files_is_all_or_nothing(
    sabha: CliRunner, migrated_url: str, tmp_path: Path, isolated_settings: Path
) -> None:
    _ok(sabha, "benchmarks", "load", str(_starter("kisan-advisory")))
    before = _datasets(migrated_url)
    good = write_benchmark(tmp_path / "good", generation_items(4))
    refused = _copy_of_kisan(tmp_path / "refused", **{"dataset.license": "CC0-1.0"})
    output = _fails(sabha, "benchmarks", "load", str(good), str(refused))
    assert "field 'dataset.license'" in output and "Nothing was loaded." in output
    assert _datasets(migrated_url) == before
    engine = make_engine(migrated_url)
    with Session(engine) as session:
        assert session.exec(select(Benchmark.name)).all() == ["kisan-advisory"]
    engine.dispose()
    assert not (isolated_settings / "artifacts" / "datasets" / "tiny-gen").exists() or not any(
        (isolated_settings / "artifacts" / "datasets" / "tiny-gen").iterdir()
    )
    _ok(sabha, "benchmarks", "load", str(good))  # alone, it loads


def test_release_of_several_dataset_files_is_all_or_nothing(
    sabha: CliRunner, migrated_url: str, tmp_path: Path
) -> None:
    def dataset_file(folder: Path, name: str, license: str) -> Path:
        folder.mkdir(parents=True)
        (folder / "rows.jsonl").write_text(
            "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in generation_items(2)),
            encoding="utf-8",
        )
        spec = {
            "name": name,
            "title": name,
            "license": license,
            "task": "generation",
            "languages": ["hi-Deva", "sw-Latn"],
            "items": "rows.jsonl",
            "card": {"summary": "s", "collection_process": "c", "intended_use": "i",
                     "limitations": "l"},
        }  # fmt: skip
        path = folder / "data.yaml"
        path.write_text(yaml.safe_dump(spec), encoding="utf-8")
        return path

    _ok(sabha, "datasets", "release", str(dataset_file(tmp_path / "a", "shamba", "CC-BY-4.0")))
    before = _datasets(migrated_url)
    fresh = dataset_file(tmp_path / "b", "mazao", "CC-BY-4.0")
    relicensed = dataset_file(tmp_path / "c", "shamba", "CC0-1.0")
    output = _fails(sabha, "datasets", "release", str(fresh), str(relicensed))
    assert f"{relicensed}:{_line_of(relicensed, 'license:')}: field 'license'" in output
    assert _datasets(migrated_url) == before
    twice = _fails(sabha, "datasets", "release", str(fresh), str(fresh))
    assert "field 'name': 'mazao' is also the name in" in twice
    assert _datasets(migrated_url) == before
