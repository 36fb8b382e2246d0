"""Hostile benchmark files are refused whole, each problem named by file, line and field."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pytest
from conftest import generation_items, write_benchmark
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sabha.annotation.release import dataset_columns, dataset_rows
from sabha.platform.benchmarks import ItemSpec, LoadedBenchmark, load_benchmark_file
from sabha.platform.benchmarks import _items as items_module
from sabha.platform.db import session_scope
from sabha.platform.domain import Benchmark, DatasetVersion, Item
from sabha.platform.errors import ValidationFailed
from sabha.platform.services.benchmarks import register_benchmark

pytestmark = pytest.mark.postgresql


def _problems(path: Path, **kwargs: Any) -> str:
    with pytest.raises(ValidationFailed) as caught:
        load_benchmark_file(path, **kwargs)
    return "\n".join(caught.value.problems)


def _write_lines(folder: Path, lines: list[bytes], **overrides: Any) -> Path:
    """A benchmark whose items file holds exactly ``lines``."""
    path = write_benchmark(folder, generation_items(1), **overrides)
    (folder / "tiny-gen.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _line(item: dict[str, Any]) -> bytes:
    return json.dumps(item, ensure_ascii=False).encode("utf-8")


# 1. Reserved names


@pytest.mark.parametrize("name", ["language", "id", "split", "region", "dialect", "reference"])
def test_input_fields_named_like_item_columns_are_refused_per_row(
    tmp_path: Path, name: str
) -> None:
    items = generation_items(3)
    items[2]["input"][name] = "en"
    problems = _problems(write_benchmark(tmp_path, items))
    assert (
        f"tiny-gen.jsonl:3: field 'input.{name}': '{name}' is a reserved column name; "
        f"rename the input field (e.g. '{name}_hint') and the template placeholder"
    ) in problems


def test_reserved_attribute_names_are_refused_in_items_and_definitions(tmp_path: Path) -> None:
    items = generation_items(2)
    items[1]["attributes"] = {"label": "x"}
    problems = _problems(write_benchmark(tmp_path / "a", items))
    assert "tiny-gen.jsonl:2: field 'attributes.label': 'label' is a reserved column name" in (
        problems
    )
    problems = _problems(write_benchmark(tmp_path / "b", items, attributes={"language": ["x"]}))
    assert "field 'attributes.language': 'language' is a reserved column name" in problems


def test_template_placeholders_naming_reserved_columns_are_refused(tmp_path: Path) -> None:
    path = write_benchmark(tmp_path, generation_items(2), prompt={"template": "{language}"})
    assert "field 'prompt.template': placeholders ['language'] name reserved" in _problems(path)


def test_input_field_named_like_an_attribute_is_refused(tmp_path: Path) -> None:
    items = generation_items(2)
    for item in items:
        item["attributes"] = {"crop": "wheat"}
    items[1]["input"]["crop"] = "rice"
    path = write_benchmark(tmp_path, items, attributes={"crop": ["wheat"]})
    assert "tiny-gen.jsonl:2: field 'input.crop': 'crop' is also an attribute name" in (
        _problems(path)
    )


def test_released_columns_are_the_union_over_all_items(tmp_path: Path, sqlite_db: Engine) -> None:
    items = generation_items(3)
    items[2]["input"]["context"] = "केवल तीसरे में"  # only the last row has it
    loaded = load_benchmark_file(write_benchmark(tmp_path, items))
    assert "context" in dataset_columns(loaded)
    rows = dataset_rows(loaded)
    assert [row["context"] for row in rows] == [None, None, "केवल तीसरे में"]
    with session_scope(sqlite_db) as session:
        register_benchmark(session, loaded, tmp_path / "artifacts")
    with Session(sqlite_db) as session:
        version = session.exec(select(DatasetVersion)).one()
    reloaded = datasets.load_dataset(
        "parquet", data_files=version.artifact_uri, split="train", cache_dir=str(tmp_path / "c")
    )
    assert reloaded.to_list() == rows


def test_release_refuses_column_collisions_that_bypassed_validation(tmp_path: Path) -> None:
    loaded = load_benchmark_file(write_benchmark(tmp_path, generation_items(2)))
    forged = ItemSpec.model_construct(
        **{**loaded.items[0].model_dump(), "input": {"question": "q", "language": "en"}}
    )
    bypassed = LoadedBenchmark(path=loaded.path, spec=loaded.spec, items=[forged])
    with pytest.raises(ValueError, match=r"columns \['language'\] would be written twice"):
        dataset_rows(bypassed)


# 2. Sizes


def test_a_huge_field_is_refused_with_the_setting_to_change(tmp_path: Path) -> None:
    items = generation_items(2)
    items[1]["input"]["question"] = "x" * 200_000
    path = write_benchmark(tmp_path, items)
    assert (
        "tiny-gen.jsonl:2: field 'input.question': 200,000 characters; "
        "the limit is 20,000 (SABHA_MAX_FIELD_CHARS)"
    ) in _problems(path)
    assert len(load_benchmark_file(path, max_field_chars=200_000).items) == 2


def test_field_limit_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    items = generation_items(2)
    items[0]["reference"] = "क" * 51
    items[1]["dialect"] = "d" * 51
    items[1]["attributes"] = {}
    path = write_benchmark(tmp_path, items)
    load_benchmark_file(path)
    monkeypatch.setenv("SABHA_MAX_FIELD_CHARS", "50")
    problems = _problems(path)
    assert "tiny-gen.jsonl:1: field 'reference': 51 characters; the limit is 50" in problems
    assert "tiny-gen.jsonl:2: field 'dialect': 51 characters; the limit is 50" in problems


def test_overlong_lines_too_many_items_and_huge_files_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = generation_items(4)
    path = write_benchmark(tmp_path, items)
    long_line = _line({**items[0], "id": "long", "reference": "x" * 16_000})
    (tmp_path / "tiny-gen.jsonl").write_bytes(
        b"\n".join(_line(item) for item in items) + b"\n" + long_line + b"\n"
    )
    problems = _problems(path, max_field_chars=100)
    assert re.search(
        r"tiny-gen\.jsonl:5: line has 16,[0-9]{3} bytes; the limit is 15,000", problems
    )
    monkeypatch.setattr(items_module, "MAX_ITEMS", 3)
    assert "tiny-gen.jsonl:4: more than 3 items" in _problems(path)
    monkeypatch.setattr(items_module, "MAX_ITEMS_FILE_BYTES", 100)
    assert re.search(r"tiny-gen\.jsonl: [0-9,]+ bytes; the limit is 100", _problems(path))


# 3. Database column sizes, checked before anything is written


def test_schema_limits_are_the_database_column_sizes() -> None:
    from sabha.platform.benchmarks import LIMITS
    from sabha.platform.domain import Dataset, Score
    from sabha.platform.languages import MAX_LANGUAGE_TAG_CHARS, MAX_REGION_CHARS

    columns = {
        "dataset_name": Dataset.name, "title": Dataset.title, "license": Dataset.license,
        "item_id": Item.key, "language": Item.language, "dialect": Item.dialect,
        "region": Item.region, "split": Item.split, "label": Item.label,
        "benchmark_name": Benchmark.name, "task": Benchmark.task,
        "metric": Benchmark.primary_metric, "attribute_name": Score.breakdown,
        "attribute_value": Score.group,
    }  # fmt: skip
    for name, column in columns.items():
        assert LIMITS[name] == column.type.length, name
    assert Benchmark.title.type.length == LIMITS["title"]
    assert Score.metric.type.length == LIMITS["metric"]
    assert MAX_LANGUAGE_TAG_CHARS == LIMITS["language"]
    assert MAX_REGION_CHARS == LIMITS["region"]


LONG_TAG = "sl-Latn-IT-rozaj-biske-1994-alalc97"  # 35 characters, every subtag registered


def _at(n: int) -> str:
    return "क" * n  # multi-byte, so a byte-counting database would fail too


def _classification_spec(**overrides: Any) -> dict[str, Any]:
    return {
        "task": "classification",
        "labels": ["safe", "unsafe"],
        "metrics": ["accuracy"],
        "primary_metric": "accuracy",
        **overrides,
    }


Change = Callable[[dict[str, Any], list[dict[str, Any]]], None]


def _spec(**fields: Any) -> Change:
    return lambda spec, items: spec.update(fields)


def _dataset(**fields: Any) -> Change:
    return lambda spec, items: spec["dataset"].update(fields)


def _first_item(**fields: Any) -> Change:
    return lambda spec, items: items[0].update(fields)


def _both(*changes: Change) -> Change:
    def change(spec: dict[str, Any], items: list[dict[str, Any]]) -> None:
        for one in changes:
            one(spec, items)

    return change


def _attribute(name: str, value: str) -> Change:
    def change(spec: dict[str, Any], items: list[dict[str, Any]]) -> None:
        spec["attributes"] = {name: [value]}
        for item in items:
            item["attributes"] = {name: value}

    return change


CASES: dict[str, tuple[Change, Change, str]] = {
    # name: (change at the limit, change one over, expected message)
    "title": (
        _spec(title=_at(200)),
        _spec(title=_at(201)),
        "field 'title': 201 characters; the limit is 200 (Dataset.title)",
    ),
    "license": (
        _dataset(license="L" * 50),
        _dataset(license="L" * 51),
        "field 'dataset.license': 51 characters; the limit is 50 (Dataset.license)",
    ),
    "benchmark name": (
        _spec(name="b" * 64),
        _spec(name="b" * 101),
        "field 'name': 'bbbb",
    ),
    "dataset name": (
        _dataset(name="d" * 64),
        _dataset(name="d" * 65),
        "field 'dataset.name': 'dddd",
    ),
    "item id": (
        _first_item(id="i" * 100),
        _first_item(id="i" * 101),
        ":1: field 'id': 101 characters; the limit is 100 (Item.key)",
    ),
    "language": (
        _both(_spec(languages=[LONG_TAG, "hi-Deva"]), _first_item(language=LONG_TAG)),
        _spec(languages=[LONG_TAG + "x", "hi-Deva"]),
        f"field 'languages.0': '{LONG_TAG}x'... has 36 characters; a language tag has at most 35",
    ),
    "dialect": (
        _first_item(dialect=_at(100)),
        _first_item(dialect=_at(101)),
        ":1: field 'dialect': 101 characters; the limit is 100 (Item.dialect)",
    ),
    "region": (
        _first_item(region="AF-BAL"),  # the longest ISO 3166-2 codes
        _first_item(region="IN-UPPERMOST"),
        ":1: field 'region': 'IN-UPPERMOST' is not a region; write an ISO 3166-2",
    ),
    "label": (
        _both(_spec(labels=["safe", _at(100)]), _first_item(label=_at(100))),
        _both(_spec(labels=["safe", _at(101)]), _first_item(label=_at(101))),
        "field 'labels.1': 101 characters; the limit is 100 (Item.label)",
    ),
    "attribute name": (
        _attribute("a" * 30, "x"),
        _attribute("a" * 31, "x"),
        f"field 'attributes.{'a' * 31}': 31 characters; the limit is 30 (Score.breakdown)",
    ),
    "attribute value": (
        _attribute("crop", _at(100)),
        _attribute("crop", _at(101)),
        "field 'attributes.crop.0': 101 characters; the limit is 100 (Score.group)",
    ),
}


def _classification_files(folder: Path, change: Change) -> Path:
    spec = {
        "name": "tiny-cls",
        "title": "Tiny classification",
        "description": "A test benchmark.",
        "languages": ["hi-Deva"],
        "dataset": {
            "name": "tiny-cls",
            "items": "tiny-gen.jsonl",
            "license": "CC-BY-4.0",
            "card": {"summary": "s", "collection_process": "c", "intended_use": "i",
                     "limitations": "l"},
        },
        "prompt": {"template": "{prompt}"},
        "breakdowns": ["language"],
        **_classification_spec(),
    }  # fmt: skip
    items = [
        {"id": f"c-{n}", "language": "hi-Deva", "split": "test",
         "input": {"prompt": "ठीक है?"}, "label": "safe"}
        for n in range(2)
    ]  # fmt: skip
    change(spec, items)
    return write_benchmark(folder, items, **spec)


@pytest.mark.parametrize("case", CASES)
def test_database_column_sizes_are_checked_before_any_write(
    case: str, db: Engine, tmp_path: Path
) -> None:
    at_limit, over, message = CASES[case]
    loaded = load_benchmark_file(_classification_files(tmp_path / "ok", at_limit))
    with session_scope(db) as session:
        register_benchmark(session, loaded, tmp_path / "artifacts")
    with Session(db) as session:
        assert len(session.exec(select(Item)).all()) == 2
        assert session.exec(select(Benchmark)).one().title == loaded.spec.title

    with pytest.raises(ValidationFailed) as caught:
        load_benchmark_file(_classification_files(tmp_path / "over", over))
    assert message in "\n".join(caught.value.problems)


# 4. Malicious rows


def test_nul_characters_are_refused_in_every_text_field(tmp_path: Path) -> None:
    items = generation_items(4)
    items[0]["input"]["question"] = "a\x00b"
    items[1]["reference"] = "\x00"
    items[2]["dialect"] = "x\x00"
    items[3]["id"] = "t\x00"
    path = write_benchmark(tmp_path, items, title="Tiny\x00")
    problems = _problems(path)
    assert "field 'title': contains a NUL character (U+0000) at position 5" in problems
    path = write_benchmark(tmp_path, items)
    problems = _problems(path)
    nul = "contains a NUL character (U+0000) at position {}; PostgreSQL cannot store it"
    assert f"tiny-gen.jsonl:1: field 'input.question': {nul.format(2)}" in problems
    assert f"tiny-gen.jsonl:2: field 'reference': {nul.format(1)}" in problems
    assert f"tiny-gen.jsonl:3: field 'dialect': {nul.format(2)}" in problems
    assert "tiny-gen.jsonl:4: field 'id': contains a NUL character" in problems


def test_lone_surrogates_and_invalid_utf8_are_line_numbered(tmp_path: Path) -> None:
    good = generation_items(3)
    surrogate = _line(good[0]).replace("गेहूं".encode(), b"\\ud800")
    path = _write_lines(tmp_path, [surrogate, _line(good[1]), b'{"id": "t-\xff"}'])
    problems = _problems(path)
    assert "tiny-gen.jsonl:1: field 'input.question': contains a lone surrogate" in problems
    assert "tiny-gen.jsonl:3: not UTF-8 text (byte 0xff at column 11)" in problems
    assert ":2:" not in problems


def test_lines_that_are_not_flat_objects_are_refused(tmp_path: Path) -> None:
    good = generation_items(6)
    good[3]["input"]["question"] = 42
    good[4]["input"]["question"] = ["a", "b"]
    good[5]["input"]["question"] = {"nested": {"deeper": "x"}}
    lines = [b"[1, 2]", b'"text"', b"[" * 100_000, *map(_line, good[3:])]
    problems = _problems(_write_lines(tmp_path, lines))
    assert "tiny-gen.jsonl:1: a JSON line must be an object, not a list" in problems
    assert "tiny-gen.jsonl:2: a JSON line must be an object, not str" in problems
    assert "tiny-gen.jsonl:3: not valid JSON (nested too deeply)" in problems
    assert "tiny-gen.jsonl:4: field 'input.question': must be a string, not a number" in problems
    assert "tiny-gen.jsonl:5: field 'input.question': must be a string, not a list" in problems
    assert "tiny-gen.jsonl:6: field 'input.question': must be a string, not an object" in problems


@pytest.mark.parametrize("item_id", ["../etc/passwd", "a/b", "a\\b", "a..b", ".hidden", "/abs"])
def test_ids_that_could_be_paths_are_refused(tmp_path: Path, item_id: str) -> None:
    items = generation_items(2)
    items[1]["id"] = item_id
    assert "tiny-gen.jsonl:2: field 'id': " in _problems(write_benchmark(tmp_path, items))
    assert "is not a valid item id" in _problems(write_benchmark(tmp_path, items))


def test_duplicate_keys_in_one_line_are_refused(tmp_path: Path) -> None:
    line = b'{"id": "a", "id": "b", "language": "hi-Deva"}'
    problems = _problems(_write_lines(tmp_path, [line]))
    assert "tiny-gen.jsonl:1: field 'id': appears twice in one object" in problems


def test_a_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = write_benchmark(tmp_path, generation_items(2))
    for name in ("tiny-gen.jsonl", "tiny-gen.yaml"):
        (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + (tmp_path / name).read_bytes())
    assert len(load_benchmark_file(path).items) == 2


def test_unicode_line_separators_inside_strings_do_not_split_rows(tmp_path: Path) -> None:
    items = generation_items(2)
    items[0]["reference"] = "एक\u2028दो\u0085तीन"
    assert load_benchmark_file(write_benchmark(tmp_path, items)).items[0].reference == (
        "एक\u2028दो\u0085तीन"
    )


def test_all_problems_of_a_file_are_reported_together(tmp_path: Path) -> None:
    items = generation_items(4)
    items[0]["input"]["language"] = "en"
    items[1]["input"]["question"] = "x" * 200_000
    items[2]["region"] = "IN-XX"
    items[3]["language"] = "hi"
    problems = _problems(write_benchmark(tmp_path, items))
    lines = problems.splitlines()
    assert len(lines) == 4
    for number, field in enumerate(["input.language", "input.question", "region", "language"], 1):
        assert re.fullmatch(rf".*tiny-gen\.jsonl:{number}: field '{field}': .+", lines[number - 1])
