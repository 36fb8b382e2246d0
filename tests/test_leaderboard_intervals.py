"""A group with too few items has no interval, and JSON says so the way pages and CSV do."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from conftest import ScriptedEngine, generation_items, run_with, write_benchmark
from flask.testing import FlaskClient

from sabha.leaderboards.public import Cell, ScorePublic
from sabha.platform.app import create_app
from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import make_engine, session_scope, upgrade_database
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job
from sabha.platform.settings import Settings


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[FlaskClient, int]:
    """A benchmark with 8 Hindi items and 2 Swahili ones (fewer than the minimum of 5)."""
    folder = tmp_path_factory.mktemp("few")
    items = [item for item in generation_items(16) if item["language"] == "hi-Deva"]
    items += [item for item in generation_items(4) if item["language"] == "sw-Latn"]
    settings = Settings(data_dir=folder / "data")
    db = make_engine(settings.resolved_database_url)
    upgrade_database(db)
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(
            session,
            load_benchmark_file(write_benchmark(folder / "bench", items)),
            settings.resolved_artifacts_dir,
        )
        model = add_model(session, "echo", repo_id="org/echo", revision="e" * 40)
        job_id = create_job(session, model, benchmark)[0].id
    assert job_id is not None
    run_with(db, [job_id], ScriptedEngine(answer=lambda r: r.text.split("Question:")[-1]))
    db.dispose()
    return create_app(settings).test_client(), job_id


def test_json_leaderboard_has_no_interval_for_too_few_items(site: tuple[FlaskClient, int]) -> None:
    client, _ = site
    board = client.get("/api/v1/benchmarks/tiny-gen/leaderboard").get_json()
    groups = board["rows"][0]["breakdowns"]["language"]
    few, enough = groups["sw-Latn"], groups["hi-Deva"]
    assert few["too_few"] is True and few["n"] == 2
    assert few["ci_low"] is None and few["ci_high"] is None
    assert few["value"] is not None  # shown, like the page and the CSV do
    assert enough["too_few"] is False and enough["ci_low"] <= enough["ci_high"]
    page = client.get("/benchmarks/tiny-gen").get_data(as_text=True)
    assert "too few items" in page
    rows = list(csv.reader(io.StringIO(client.get("/benchmarks/tiny-gen/leaderboard.csv").text)))
    header, values = rows[0], rows[1]
    low = header.index("chrf++[language=sw-Latn]_ci_low")
    assert values[low] == values[low + 1] == ""


def test_json_run_scores_have_no_interval_for_too_few_items(
    site: tuple[FlaskClient, int],
) -> None:
    client, job_id = site
    run = client.get(f"/api/v1/jobs/{job_id}/results").get_json()
    few = [s for s in run["scores"] if s["group"] == "sw-Latn"]
    assert few and all(s["too_few"] and s["ci_low"] is s["ci_high"] is None for s in few)
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "too few items" in page


def test_openapi_document_says_intervals_may_be_null(site: tuple[FlaskClient, int]) -> None:
    client, _ = site
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    for name in ("Cell", "ScorePublic"):
        for bound in ("ci_low", "ci_high"):
            prop = schemas[name]["properties"][bound]
            assert {"type": "null"} in prop["anyOf"], (name, bound, prop)
            assert "too_few" in prop["description"]


def test_stored_cells_from_before_lose_their_zero_width_interval() -> None:
    # Read-model rows written before this change held the value as both bounds.
    old = {"value": 0.5, "ci_low": 0.5, "ci_high": 0.5, "n": 2, "too_few": True}
    assert Cell.model_validate(old).ci_low is None
    score = ScorePublic.model_validate({**old, "metric": "bleu", "breakdown": "x", "group": "y"})
    assert score.ci_high is None


def test_scores_with_enough_items_keep_their_interval(tmp_path: Path) -> None:
    cell = Cell.model_validate({"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 9})
    assert (cell.ci_low, cell.ci_high) == (0.4, 0.6)
