"""Budgets of new tokens are fair across scripts: each language's comes from its references
in the evaluated model's own tokens, and the run page shows how many answers were cut."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_with, write_benchmark
from sqlalchemy.engine import Engine
from sqlmodel import Session

from sabha.platform.app import create_app
from sabha.platform.benchmarks import (
    DecodingSpec,
    load_benchmark_file,
    starter_benchmark_paths,
)
from sabha.platform.benchmarks._identity import generation_identity
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import Job
from sabha.platform.errors import ValidationFailed
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.budgets import load_token_counter
from sabha.platform.services.pools import register_pool
from sabha.platform.services.queue import (
    ResultRejected,
    create_job,
    lease_next_shard,
    submit_shard_results,
)
from sabha.platform.settings import Settings
from sabha.platform.wire import (
    DecodingParams,
    EngineInfo,
    GenerationResult,
    ShardResult,
)

KISAN = next(p for p in starter_benchmark_paths() if p.stem == "kisan-advisory")


def _english_tokenizer_model(folder: Path) -> Path:
    """A model folder whose tokenizer.json is a byte-level BPE trained on English and
    Swahili only, as many open models' tokenizers mostly are."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    swahili = [
        i.reference or "" for i in load_benchmark_file(KISAN).items if i.language == "sw-Latn"
    ]
    english = ["Sow the seeds after the first rains and keep the field free of weeds."] * 20
    tokenizer.train_from_iterator(
        swahili + english,
        trainers.BpeTrainer(
            vocab_size=600,
            special_tokens=["<unk>", "<s>", "</s>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    _model_files(folder)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def _model_files(folder: Path) -> None:
    """What the model-folder checks look for (the weights are not real)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (folder / "model.safetensors").write_bytes(b"\0" * 16)


def test_kisan_budgets_fit_every_reference_in_the_models_own_tokens(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    folder = _english_tokenizer_model(tmp_path / "model")
    loaded = load_benchmark_file(KISAN)
    with session_scope(sqlite_db) as session:
        benchmark, _ = register_benchmark(session, loaded, tmp_path / "artifacts")
        model = add_model(session, "english-bpe", path=folder)
    counter = load_token_counter(model.as_source())
    assert "tokenizer.json" in counter.source
    with session_scope(sqlite_db) as session:
        job, _ = create_job(session, model, benchmark, token_counter=counter)
        decoding, record = dict(job.decoding), dict(job.generation["answer_budget"])
        generation_hash = job.generation_hash
    budgets = decoding["max_tokens_by_language"]
    assert set(budgets) == {"hi-Deva", "sw-Latn", "ta-Taml"}
    lengths: dict[str, list[int]] = {}
    for item in loaded.items:
        lengths.setdefault(item.language, []).append(counter.count(item.reference or ""))
    for language, found in lengths.items():
        assert max(found) <= budgets[language], (language, max(found), budgets[language])
    # Under this tokenizer a Hindi or Tamil reference costs several times the tokens of
    # a Swahili one, so one limit for all (version 1's 48) cut Hindi and Tamil far
    # sooner; the budgets follow each script's cost instead.
    medians = {language: statistics.median(found) for language, found in lengths.items()}
    for language in ("hi-Deva", "ta-Taml"):
        assert medians[language] > 48 and medians[language] > 3 * medians["sw-Latn"]
    assert budgets["ta-Taml"] > budgets["sw-Latn"] and budgets["hi-Deva"] > budgets["sw-Latn"]
    assert record["counted_with"] == counter.source
    assert record["rule"] == {"multiple": 1.5, "quantile": 1.0, "min_tokens": 16}
    assert "budget" not in decoding and decoding["max_tokens"] == 1024
    # The rule, not the model's numbers, is in the generation identity, so the job
    # is the benchmark's own and is ranked on its leaderboard.
    assert generation_hash == benchmark.generation_hash == loaded.generation_hash


def test_without_a_tokenizer_budgets_count_bytes_which_no_tokenizer_exceeds(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    loaded = load_benchmark_file(KISAN)
    folder = tmp_path / "sentencepiece-only"
    _model_files(folder)
    (folder / "tokenizer.model").write_bytes(b"\0")  # no tokenizer.json to read
    with session_scope(sqlite_db) as session:
        benchmark, _ = register_benchmark(session, loaded, tmp_path / "artifacts")
        model = add_model(session, "sentencepiece", path=folder)
    counter = load_token_counter(model.as_source())
    assert counter.source.startswith("UTF-8 bytes + 1") and "no tokenizer.json" in counter.source
    with session_scope(sqlite_db) as session:
        job, _ = create_job(session, model, benchmark, token_counter=counter)
        budgets = job.decoding["max_tokens_by_language"]
    longest = max(
        len((i.reference or "").encode()) for i in loaded.items if i.language == "ta-Taml"
    )
    assert budgets["ta-Taml"] == min(1024, int(1.5 * (longest + 1) + 0.999))


def _budgeted(tmp_path: Path) -> Path:
    items = [
        {"id": f"hi-{i}", "language": "hi-Deva", "split": "test",
         "input": {"question": "गेहूं की सिंचाई कब करें?"},
         "reference": "पहली सिंचाई बुवाई के तीन सप्ताह बाद करें।"}
        for i in range(3)
    ] + [
        {"id": f"sw-{i}", "language": "sw-Latn", "split": "test",
         "input": {"question": "Nipande mahindi lini?"}, "reference": "Mvua za masika."}
        for i in range(3)
    ]  # fmt: skip
    return write_benchmark(
        tmp_path,
        items,
        decoding={"max_tokens": 64, "budget": {"multiple": 1.0, "min_tokens": 4}},
    )


class _WordEngine:
    """Answers in words (one word a token), cut at the budget its lease gives the item.

    Hindi answers run to 100 words, Swahili ones to 3, so only Hindi hits its budget.
    """

    def __init__(self) -> None:
        self.budgets: dict[str | None, set[int]] = {}

    def info(self) -> EngineInfo:
        return EngineInfo(host="h", device="words")

    def generate_shards(self, work: Any, max_in_flight: int = 256) -> Iterator[Any]:
        for key, requests, decoding, _policy in work:
            results = []
            for r in requests:
                budget = decoding.max_tokens_for(r.language)
                self.budgets.setdefault(r.language, set()).add(budget)
                wanted = 100 if r.language == "hi-Deva" else 3
                words = ["शब्द" if r.language == "hi-Deva" else "neno"] * min(wanted, budget)
                results.append(
                    GenerationResult(
                        item_id=r.item_id,
                        prompt=r.text,
                        text=" ".join(words),
                        finish_reason="length" if wanted > budget else "stop",
                        num_tokens=len(words),
                    )
                )
            yield key, results

    def close(self) -> None:
        pass


def test_each_item_gets_its_languages_budget_and_the_run_page_shows_the_cut_share(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    from sabha.platform.db import make_engine, upgrade_database

    db = make_engine(settings.resolved_database_url)
    upgrade_database(db)
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(
            session, load_benchmark_file(_budgeted(tmp_path / "b")), settings.resolved_artifacts_dir
        )
        model = add_model(session, "m", repo_id="org/m", revision="a" * 40)
        job_id = create_job(session, model, benchmark)[0].id
    assert job_id is not None
    engine = _WordEngine()
    run_with(db, [job_id], engine)
    with Session(db) as session:
        job = session.get(Job, job_id)
        assert job is not None
        budgets = job.decoding["max_tokens_by_language"]
    # Bytes + 1 of each reference (no tokenizer was given), at most 64.
    assert budgets == {"hi-Deva": 64, "sw-Latn": len(b"Mvua za masika.") + 1}
    assert engine.budgets == {"hi-Deva": {64}, "sw-Latn": {16}}
    client = create_app(settings).test_client()
    run = client.get(f"/api/v1/jobs/{job_id}/results").get_json()
    assert run["answer_lengths"] == [
        {"language": "hi-Deva", "max_tokens": 64, "answers": 3, "hit_limit": 3, "share": 1.0},
        {"language": "sw-Latn", "max_tokens": 16, "answers": 3, "hit_limit": 0, "share": 0.0},
    ]
    assert run["generation"]["answer_budget"]["counted_with"].startswith("UTF-8 bytes + 1")
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Answers cut at their budget" in page
    assert "100%" in page and "0%" in page
    schema = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    assert "answer_lengths" in schema["RunPublic"]["properties"]
    db.dispose()


def test_a_result_longer_than_its_items_budget_is_refused(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    with session_scope(sqlite_db) as session:
        benchmark, _ = register_benchmark(
            session, load_benchmark_file(_budgeted(tmp_path / "b")), tmp_path / "artifacts"
        )
        model = add_model(session, "m", repo_id="org/m", revision="a" * 40)
        create_job(session, model, benchmark)
    lease = lease_next_shard(sqlite_db, register_pool(sqlite_db, "p"))
    assert lease is not None
    assert {r.language for r in lease.requests} == {"hi-Deva", "sw-Latn"}
    assert lease.decoding.max_tokens_by_language["sw-Latn"] == 16

    def result(tokens: dict[str, int]) -> ShardResult:
        return ShardResult(
            run_id=lease.run_id,
            token=lease.token,
            results=[
                GenerationResult(
                    item_id=r.item_id, prompt=r.text, text="x", num_tokens=tokens[r.language or ""]
                )
                for r in lease.requests
            ],
            executed_on=EngineInfo(host="h"),
        )

    with pytest.raises(ResultRejected, match="more new tokens than the job allows"):
        submit_shard_results(sqlite_db, result({"hi-Deva": 64, "sw-Latn": 17}))
    submit_shard_results(sqlite_db, result({"hi-Deva": 64, "sw-Latn": 16}))


def test_decoding_without_a_budget_keeps_its_identity_and_its_one_limit() -> None:
    plain = DecodingSpec(max_tokens=8).model_dump(mode="json")
    assert plain == {"max_tokens": 8, "temperature": 0.0, "seed": 0}  # as before budgets
    budgeted = DecodingSpec.model_validate({"max_tokens": 8, "budget": {"min_tokens": 4}})
    assert generation_identity("h", "Q", None, budgeted.model_dump(mode="json"), "auto", 2048) != (
        generation_identity("h", "Q", None, plain, "auto", 2048)
    )
    old = DecodingParams.model_validate({"max_tokens": 48, "temperature": 0.0, "seed": 0})
    assert old.max_tokens_for("ta-Taml") == old.max_tokens_for(None) == 48


def test_bad_budgets_are_refused_naming_the_field(tmp_path: Path) -> None:
    path = write_benchmark(
        tmp_path / "a", [], decoding={"max_tokens": 8, "budget": {"min_tokens": 16}}
    )
    (tmp_path / "a" / "tiny-gen.jsonl").write_text(
        '{"id": "a", "language": "hi-Deva", "split": "test", "input": {"question": "?"}, '
        '"reference": "!"}\n',
        encoding="utf-8",
    )
    with pytest.raises(ValidationFailed) as caught:
        load_benchmark_file(path)
    assert any(
        "field 'decoding.budget.min_tokens': 16 is more than max_tokens 8" in p
        for p in caught.value.problems
    ), caught.value.problems
    classification = write_benchmark(
        tmp_path / "b",
        [{"id": "c", "language": "hi-Deva", "split": "test", "input": {"prompt": "?"},
          "label": "safe"}],
        task="classification", labels=["safe", "unsafe"], metrics=["accuracy"],
        primary_metric="accuracy", prompt={"template": "{prompt}"},
        decoding={"max_tokens": 32, "budget": {}},
    )  # fmt: skip
    with pytest.raises(ValidationFailed) as caught:
        load_benchmark_file(classification)
    assert any("field 'decoding.budget': budgets come from reference answers" in p
               for p in caught.value.problems)  # fmt: skip
