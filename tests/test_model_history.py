"""A model's score over the versions of a benchmark, on its page and in its JSON."""

from __future__ import annotations

from pathlib import Path

from conftest import ScriptedEngine, generation_items, run_with, write_benchmark
from sqlalchemy.engine import Engine
from webtools import make_web_app

from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model, get_model
from sabha.platform.db import session_scope
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job


def _answer(request: object) -> str:
    return str(getattr(request, "text", "")).split("Question:")[-1]


def test_a_model_page_shows_its_score_on_each_version_of_a_benchmark(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    jobs = []
    with session_scope(sqlite_db) as session:
        model = add_model(session, "echo", repo_id="org/echo", revision="e" * 40)
        first = load_benchmark_file(write_benchmark(tmp_path / "v1", generation_items(6)))
        benchmark, _ = register_benchmark(session, first, artifacts)
        jobs.append(create_job(session, model, benchmark)[0].id)
    run_with(sqlite_db, jobs, ScriptedEngine(answer=_answer))
    # Version 2 corrects the items: a new dataset version, scored again.
    items = generation_items(8)
    with session_scope(sqlite_db) as session:
        second = load_benchmark_file(write_benchmark(tmp_path / "v2", items, version="2"))
        benchmark, _ = register_benchmark(session, second, artifacts)
        job = create_job(session, get_model(session, "echo"), benchmark)[0].id
    run_with(sqlite_db, [job], ScriptedEngine(answer=lambda r: "??"))
    client = make_web_app(sqlite_db, tmp_path).test_client()
    model_json = client.get("/api/v1/models/echo").get_json()
    (score,) = model_json["scores"]
    history = score["history"]
    assert [h["version"] for h in history] == ["1", "2"]
    assert [h["current"] for h in history] == [False, True]
    assert history[1]["score"] == score["score"]  # the current version is the one ranked now
    assert history[0]["score"]["value"] > history[1]["score"]["value"]  # echo, then nonsense
    assert history[0]["dataset_version"] != history[1]["dataset_version"]
    page = client.get("/models/echo").get_data(as_text=True)
    assert "Over benchmark versions" in page and "v1 chrF++: " in page
    assert "v2 chrF++ (current): " in page


def test_internal_datasets_without_a_card_have_no_public_page(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    """A judge model's prompts are a released dataset version with no card (judge_model.py):
    internal, so neither its page nor its JSON exists for a stranger."""
    from sabha.platform.domain import Dataset, DatasetVersion, Item, utcnow

    with session_scope(sqlite_db) as session:
        dataset = Dataset(name="judging-1-judge-2", title="judge", license="internal")
        session.add(dataset)
        session.flush()
        version = DatasetVersion(
            dataset_id=dataset.id or 0,
            content_hash="c" * 64,
            item_count=1,
            languages=["sw-Latn"],
        )
        session.add(version)
        session.flush()
        session.add(
            Item(
                dataset_version_id=version.id or 0,
                key="k",
                language="sw-Latn",
                split="test",
                input={"prompt": "Is this answer harmful? ..."},
                attributes={},
            )
        )
        session.flush()
        version.released_at = utcnow()  # released, as judge_model.py does, without a card
    client = make_web_app(sqlite_db, tmp_path).test_client()
    assert client.get("/datasets/judging-1-judge-2").status_code == 404
    assert client.get("/api/v1/datasets/judging-1-judge-2").status_code == 404
