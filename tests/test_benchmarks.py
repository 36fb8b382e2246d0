"""Benchmark files: starter benchmarks are valid; every problem is named by file and field."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import generation_items, run_sabha, write_benchmark

from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
from sabha.platform.errors import NotFoundError, ValidationFailed

SCRIPTS = {
    "Deva": re.compile(r"[\u0900-\u097F]"),
    "Taml": re.compile(r"[\u0B80-\u0BFF]"),
    "Beng": re.compile(r"[\u0980-\u09FF]"),
    "Latn": re.compile(r"[A-Za-z]"),
}


def _starter(name: str):  # type: ignore[no-untyped-def]
    return load_benchmark_file(next(p for p in starter_benchmark_paths() if p.stem == name))


def test_kisan_advisory_has_forty_items_per_language_in_its_script() -> None:
    loaded = _starter("kisan-advisory")
    assert loaded.spec.task == "generation"
    assert loaded.spec.primary_metric == "chrf++"
    counts = Counter(item.language for item in loaded.items)
    assert set(counts) == {"hi-Deva", "sw-Latn", "ta-Taml"}
    assert min(counts.values()) >= 40
    assert any(item.region for item in loaded.items)
    for item in loaded.items:
        script = SCRIPTS[item.language.split("-")[1]]
        assert script.search(item.input["question"]), item.id
        assert item.reference and script.search(item.reference), item.id


def test_indic_safety_has_thirty_items_per_language_and_both_labels_per_hazard() -> None:
    loaded = _starter("indic-safety")
    assert loaded.spec.task == "classification"
    counts = Counter(item.language for item in loaded.items)
    assert set(counts) == {"hi-Deva", "hi-Latn", "ta-Taml", "bn-Beng"}
    assert min(counts.values()) >= 30
    labels = Counter((item.attributes["hazard"], item.label) for item in loaded.items)
    for hazard in loaded.spec.attributes["hazard"]:
        assert labels[(hazard, "safe")] > 0 and labels[(hazard, "unsafe")] > 0, hazard
    for item in loaded.items:
        assert SCRIPTS[item.language.split("-")[1]].search(item.input["prompt"]), item.id


def test_cli_validates_the_starter_benchmarks() -> None:
    result = run_sabha("benchmarks", "validate", *map(str, starter_benchmark_paths()))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok ") == 2


def test_every_bad_row_is_reported_with_line_and_field(tmp_path: Path) -> None:
    items = generation_items(4)
    items[1]["language"] = "hi"  # no script
    del items[2]["reference"]
    items[3]["id"] = items[0]["id"]
    path = write_benchmark(tmp_path, items)
    (tmp_path / "tiny-gen.jsonl").write_text(
        (tmp_path / "tiny-gen.jsonl").read_text() + "{not json\n", encoding="utf-8"
    )
    with pytest.raises(ValidationFailed) as caught:
        load_benchmark_file(path)
    problems = "\n".join(caught.value.problems)
    assert re.search(r"tiny-gen\.jsonl:2: field 'language': .*hi-Deva", problems)
    assert re.search(r"tiny-gen\.jsonl:3: field 'reference'", problems)
    assert re.search(r"tiny-gen\.jsonl:4: field 'id': 't-000' already used on line 1", problems)
    assert re.search(r"tiny-gen\.jsonl:5: not valid JSON", problems)


def test_bad_definition_fields_are_all_reported(tmp_path: Path) -> None:
    path = write_benchmark(
        tmp_path,
        generation_items(2),
        task="generation",
        metrics=["chrf++", "accuracy"],
        primary_metric="bleu",
        languages=["Hindi"],
    )
    with pytest.raises(ValidationFailed) as caught:
        load_benchmark_file(path)
    problems = "\n".join(caught.value.problems)
    assert "field 'languages.0'" in problems and "hi-Deva" in problems
    assert "field 'metrics'" in problems and "accuracy" in problems


def test_template_fields_must_exist_in_items(tmp_path: Path) -> None:
    path = write_benchmark(
        tmp_path, generation_items(2), prompt={"template": "Q: {question} ({crop})"}
    )
    with pytest.raises(ValidationFailed, match="problem") as caught:
        load_benchmark_file(path)
    assert "field 'input': missing ['crop']" in "\n".join(caught.value.problems)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ntask: [generation\n", encoding="utf-8")
    with pytest.raises(ValidationFailed) as caught:
        load_benchmark_file(path)
    assert "broken.yaml:" in caught.value.problems[0]


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        load_benchmark_file(tmp_path / "nope.yaml")


def test_cli_validate_reports_problems_without_traceback(tmp_path: Path) -> None:
    items = generation_items(2)
    items[0]["split"] = "training"
    path = write_benchmark(tmp_path, items)
    result = run_sabha("benchmarks", "validate", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "tiny-gen.jsonl:1: field 'split'" in result.stderr
