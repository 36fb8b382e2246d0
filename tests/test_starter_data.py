"""The starter data and its cards say what the items show, and released items never change."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import generation_items, write_benchmark

from sabha.annotation.cards import build_data_card, validate_data_card
from sabha.platform.benchmarks import (
    LoadedBenchmark,
    load_benchmark_file,
    starter_benchmark_paths,
)
from sabha.platform.errors import ValidationFailed
from sabha.platform.languages import check_region

# Every released (benchmark, version) of a starter file and the dataset version its
# items form. Items are immutable once released: changing one is a new dataset
# version, so the file needs a new `version:` and a new line here.
RELEASED = {
    ("kisan-advisory", "1"): "22047bfd3417703f127d72abc9482bec7f5fb0e3fdef2e8719a6194b0352c9de",
    ("kisan-advisory", "2"): "dcaed4fadcf99d95c24f55522df7ac225c296a4014b1eab7197f032dffc120c1",
    ("indic-safety", "1"): "cdf9a2b7dc0e5e9b4647f8753d19d51e8de2e1305a11c0e4b262e1b50fede844",
    # Version 2 reads negation per language: same items, another scoring identity.
    ("indic-safety", "2"): "cdf9a2b7dc0e5e9b4647f8753d19d51e8de2e1305a11c0e4b262e1b50fede844",
}
STARTERS = starter_benchmark_paths()


def _starter(name: str) -> LoadedBenchmark:
    return load_benchmark_file(next(p for p in STARTERS if p.stem == name))


@pytest.mark.parametrize("path", STARTERS, ids=lambda p: p.stem)
def test_starter_items_change_only_with_a_new_benchmark_version(path: Path) -> None:
    loaded = load_benchmark_file(path)
    key = (loaded.spec.name, loaded.spec.version)
    assert RELEASED.get(key) == loaded.content_hash, (
        f"{path.name}: version {loaded.spec.version} was released with items "
        f"{RELEASED.get(key)}, and the items now hash to {loaded.content_hash}. Released items "
        "never change: give the file a new `version:` and add it to RELEASED"
    )


def test_kisan_advisory_version_2_carries_the_corrections() -> None:
    loaded = _starter("kisan-advisory")
    items = {item.id: item for item in loaded.items}
    assert loaded.spec.version == "2"
    assert loaded.content_hash != RELEASED[("kisan-advisory", "1")]
    # ta-034 is set in Kilinochchi, Sri Lanka.
    assert (items["ta-034"].region, items["ta-034"].dialect) == ("LK", "Sri Lankan Tamil")
    # Answers that covered only part of their question now answer all of it.
    assert "நாள் வயதுள்ள நாற்று" in (items["ta-001"].reference or "")  # seedling age
    assert "செப்டம்பர்" in (items["ta-001"].reference or "")  # and when
    assert "மாதங்களுக்கு ஒருமுறை" in (items["ta-029"].reference or "")  # how often
    # Wording that read unnaturally.
    assert "மக்கு உரம்" not in items["ta-004"].input["question"]
    assert "सही संख्या" not in (items["hi-014"].reference or "")
    assert not items["sw-033"].input["question"].startswith("Tunaishi")
    assert "faida gani kujiunga" not in items["sw-037"].input["question"]
    assert "kwa kufuata kontua" in (items["sw-040"].reference or "")


@pytest.mark.parametrize("path", STARTERS, ids=lambda p: p.stem)
def test_region_and_dialect_tags_are_what_the_items_say(path: Path) -> None:
    loaded = load_benchmark_file(path)
    for item in loaded.items:
        if item.region:
            assert check_region(item.region) == item.region, item.id
        if item.language == "ta-Taml" and item.region == "LK":
            assert item.dialect == "Sri Lankan Tamil", f"{item.id}: set in Sri Lanka"
        if item.dialect == "Sri Lankan Tamil":
            assert item.region == "LK", item.id
    card = str(build_data_card(loaded))
    assert "(ISO 3166-2, optional)" not in card
    assert "ISO 3166-2 subdivision or ISO 3166-1 country" in card
    countries = {item.region for item in loaded.items if item.region and "-" not in item.region}
    for code in countries:  # a country code is described as a country
        assert f"`{code}` " in card and "(the whole country)" in card


@pytest.mark.parametrize("path", STARTERS, ids=lambda p: p.stem)
def test_starter_cards_claim_no_more_than_the_data_shows(path: Path) -> None:
    loaded = load_benchmark_file(path)
    card = validate_data_card(str(build_data_card(loaded)), path.name)
    metadata = card.data.to_dict()
    # Labels and references drafted by contributors, unreviewed: not "expert-generated".
    assert metadata["annotations_creators"] == ["other"]
    assert metadata["language_creators"] == ["other"]
    assert metadata["source_datasets"] == ["original"]
    # Many items are parallels across languages; the card says so.
    assert "separately for each language" not in card.text
    assert "written separately" not in card.text
    assert "not written independently" in card.text
    dialects = {item.dialect for item in loaded.items if item.dialect}
    if not dialects:
        assert "No item has a dialect tag." in card.text


def test_kisan_advisory_card_names_the_states_its_items_come_from() -> None:
    card = str(build_data_card(_starter("kisan-advisory")))
    assert "North India" not in card
    for state in ("Uttar Pradesh", "Punjab", "Haryana", "Rajasthan", "Madhya Pradesh", "Bihar"):
        assert state in card, state
    assert "Dialect tags: Sri Lankan Tamil (`ta-Taml`): 3." in card


@pytest.mark.parametrize("path", STARTERS, ids=lambda p: p.stem)
def test_card_says_how_a_speaker_proposes_a_correction(path: Path) -> None:
    loaded = load_benchmark_file(path)
    card = validate_data_card(str(build_data_card(loaded)), path.name)
    section = card.text.split("## How to propose a correction\n", 1)[1].split("\n## ", 1)[0]
    assert "/annotate" in section
    assert f"sabha annotations create {loaded.spec.name}-corrections" in section
    assert "sabha annotations release" in section
    assert "new dataset version" in section


def test_cards_state_no_creators_a_dataset_did_not_declare(tmp_path: Path) -> None:
    loaded = load_benchmark_file(write_benchmark(tmp_path, generation_items()))
    metadata = validate_data_card(str(build_data_card(loaded))).data.to_dict()
    for field in ("annotations_creators", "language_creators", "source_datasets"):
        assert field not in metadata, field


def test_card_creators_outside_the_hub_vocabulary_are_refused(tmp_path: Path) -> None:
    card = {
        "summary": "Test items.",
        "collection_process": "Written for a test.",
        "intended_use": "Tests.",
        "limitations": "Tiny.",
        "annotations_creators": ["experts"],
    }
    dataset = {"name": "tiny-gen", "items": "tiny-gen.jsonl", "license": "CC-BY-4.0"}
    path = write_benchmark(tmp_path, generation_items(), dataset={**dataset, "card": card})
    with pytest.raises(ValidationFailed) as caught:
        load_benchmark_file(path)
    problems = "\n".join(caught.value.problems)
    assert "annotations_creators" in problems and "expert-generated" in problems
