"""The leaderboard site: pages, JSON, CSV, provenance and data cards."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedEngine, generation_items, run_with, write_benchmark
from flask.testing import FlaskClient

from sabha.platform.app import create_app
from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
from sabha.platform.catalog import add_model
from sabha.platform.db import make_engine, session_scope, upgrade_database
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job
from sabha.platform.settings import Settings


def _answer_well(request: Any) -> str:
    return "safe" if "Label:" in request.text else request.text.split("Question:")[-1]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    settings = Settings(data_dir=tmp_path_factory.mktemp("site"))
    db = make_engine(settings.resolved_database_url)
    upgrade_database(db)
    job_ids = []
    with session_scope(db) as session:
        benchmarks = [
            register_benchmark(session, load_benchmark_file(p), settings.resolved_artifacts_dir)[0]
            for p in starter_benchmark_paths()
        ]
        noisy = add_model(session, "noisy", repo_id="org/noisy", revision="d" * 40, smoke_test=True)
        echo = add_model(session, "echo", repo_id="org/echo", revision="e" * 40)
        for model in (noisy, echo):
            for benchmark in benchmarks:
                job_ids.append((model.name, create_job(session, model, benchmark)[0].id))
    for name, job_id in job_ids:
        engine = ScriptedEngine(answer=_answer_well if name == "echo" else lambda r: "??")
        run_with(db, [job_id], engine)
    db.dispose()
    return create_app(settings).test_client()


def test_index_lists_both_benchmarks(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert "Kisan advisory" in page and "Indic safety" in page
    assert 'href="/datasets/kisan-advisory/card?version=' in page


def test_leaderboard_json_has_both_models_with_cis_and_ranks(client: FlaskClient) -> None:
    board = client.get("/api/v1/benchmarks/kisan-advisory/leaderboard").get_json()
    rows = {row["model"]["name"]: row for row in board["rows"]}
    assert set(rows) == {"noisy", "echo"}
    echo, noisy = rows["echo"]["scores"]["chrf++"], rows["noisy"]["scores"]["chrf++"]
    assert echo["ci_low"] <= echo["value"] <= echo["ci_high"]
    assert echo["value"] > noisy["value"]
    assert rows["echo"]["rank"] == 1 and rows["noisy"]["rank"] == 2
    assert set(rows["echo"]["breakdowns"]["language"]) == {"hi-Deva", "sw-Latn", "ta-Taml"}
    assert rows["noisy"]["model"]["smoke_test"] is True
    assert (
        board["benchmark"]["dataset"]["version"]
        == load_benchmark_file(
            next(p for p in starter_benchmark_paths() if p.stem == "kisan-advisory")
        ).content_hash
    )


def test_safety_leaderboard_reports_unparseable_and_hazards(client: FlaskClient) -> None:
    board = client.get("/api/v1/benchmarks/indic-safety/leaderboard").get_json()
    rows = {row["model"]["name"]: row for row in board["rows"]}
    assert rows["noisy"]["scores"]["unparseable"]["value"] == 100.0
    assert rows["echo"]["scores"]["unparseable"]["value"] == 0.0
    assert "privacy" in rows["echo"]["breakdowns"]["hazard"]
    page = client.get("/benchmarks/indic-safety").get_data(as_text=True)
    assert "Macro-F1 by hazard" in page and "smoke-test model" in page


def test_benchmark_page_shows_values_with_intervals(client: FlaskClient) -> None:
    page = client.get("/benchmarks/kisan-advisory").get_data(as_text=True)
    assert "±" in page and "95% confidence interval" in page
    # Each cell's hover title gives its interval and n (the text above says it is the 95% one).
    assert re.search(r'<td title="\d+\.\d\d–\d+\.\d\d, n=\d+">\d+\.\d ± \d+\.\d</td>', page)
    assert "<code>ta-Taml</code>" in page


def test_csv_export_matches_json(client: FlaskClient) -> None:
    response = client.get("/benchmarks/kisan-advisory/leaderboard.csv")
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    board = client.get("/api/v1/benchmarks/kisan-advisory/leaderboard").get_json()
    assert [r["model"] for r in rows] == [r["model"]["name"] for r in board["rows"]]
    assert float(rows[0]["chrf++"]) == board["rows"][0]["scores"]["chrf++"]["value"]
    assert "chrf++[language=hi-Deva]_ci_low" in rows[0]


def test_parquet_export_holds_the_csv_values_with_types(client: FlaskClient) -> None:
    import pyarrow.parquet as pq

    response = client.get("/benchmarks/indic-safety/leaderboard.parquet")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(response.get_data())).to_pylist()
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get("/benchmarks/indic-safety/leaderboard.csv").get_data(as_text=True)
            )
        )
    )
    assert [r["model"] for r in table] == [r["model"] for r in rows]
    for parquet_row, csv_row in zip(table, rows, strict=True):
        assert set(parquet_row) == set(csv_row)
        for column, text in csv_row.items():
            value = parquet_row[column]
            if text == "":
                assert value is None or value == "", column
            elif isinstance(value, bool):
                assert str(value) == text
            elif isinstance(value, int | float):
                assert value == float(text), column
            else:
                assert value == text, column
    assert isinstance(table[0]["macro_f1"], float) and isinstance(table[0]["rank"], int)
    assert 'href="/benchmarks/indic-safety/leaderboard.parquet"' in client.get(
        "/benchmarks/indic-safety"
    ).get_data(as_text=True)


def test_provenance_page_traces_the_score(client: FlaskClient) -> None:
    board = client.get("/api/v1/benchmarks/kisan-advisory/leaderboard").get_json()
    run_url = board["rows"][0]["run_url"]
    details = client.get(f"/api/v1{run_url}/results").get_json()
    assert details["benchmark"]["dataset"]["version"] == board["benchmark"]["dataset"]["version"]
    assert details["model"]["revision"] == "e" * 40
    assert details["decoding"]["temperature"] == 0.0
    assert "nw:2" in details["metric_signatures"]["chrf++"]
    assert details["shards"][0]["executed_on"]["host"] == "test-host"
    assert details["shards"][0]["pool"] == "test-pool" and details["pools"] == ["test-pool"]
    page = client.get(run_url).get_data(as_text=True)
    assert board["benchmark"]["dataset"]["version"] in page
    assert 'lang="hi-Deva" dir="auto"' in page


def test_data_card_page_renders(client: FlaskClient) -> None:
    board = client.get("/api/v1/benchmarks/indic-safety/leaderboard").get_json()
    version = board["benchmark"]["dataset"]["version"]
    assert board["benchmark"]["dataset"]["card_url"].endswith(f"?version={version}")
    assert client.get(f"/datasets/indic-safety/card?version={'0' * 64}").status_code == 404
    page = client.get(board["benchmark"]["dataset"]["card_url"]).get_data(as_text=True)
    assert version in page
    newest = client.get("/datasets/indic-safety/card").get_data(as_text=True)
    # The same card; only the language switcher's links name the page's own address.
    switcher = re.compile(r'<nav class="ui-lang".*?</nav>', re.S)
    assert switcher.sub("", page) == switcher.sub("", newest)
    assert "<h2>Limitations</h2>" in page
    assert "cc-by-4.0" in page
    assert "<td>Hindi (Latin script)</td>" in page


def test_data_card_html_is_sanitised(tmp_path: Path) -> None:
    card = {
        "summary": "Hello <script>alert('x')</script> <a href=\"javascript:alert(1)\">x</a>",
        "collection_process": "<img src=x onerror=alert(1)>Written by hand.",
        "intended_use": "Tests.",
        "limitations": "Tiny.",
    }
    path = write_benchmark(
        tmp_path / "b",
        generation_items(2),
        dataset={
            "name": "tiny-gen",
            "items": "tiny-gen.jsonl",
            "license": "CC-BY-4.0",
            "card": card,
        },
    )
    settings = Settings(data_dir=tmp_path / "site")
    db = make_engine(settings.resolved_database_url)
    upgrade_database(db)
    with session_scope(db) as session:
        register_benchmark(session, load_benchmark_file(path), settings.resolved_artifacts_dir)
    page = create_app(settings).test_client().get("/datasets/tiny-gen/card").get_data(as_text=True)
    assert "<script>" not in page and "onerror" not in page and "javascript:" not in page
    assert "Written by hand." in page


def test_unknown_things_give_404_with_the_known_names(client: FlaskClient) -> None:
    response = client.get("/api/v1/benchmarks/nope/leaderboard")
    assert response.status_code == 404
    assert "kisan-advisory" in response.get_json()["detail"]
    assert client.get("/benchmarks/nope").status_code == 404
    assert client.get("/jobs/9999").status_code == 404
    assert client.get("/datasets/nope/card").status_code == 404


def test_cached_pages_change_when_a_new_score_lands(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "site")
    db = make_engine(settings.resolved_database_url)
    upgrade_database(db)
    loaded = load_benchmark_file(write_benchmark(tmp_path / "b", generation_items(4)))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, settings.resolved_artifacts_dir)
        first = add_model(session, "first", repo_id="org/first", revision="1" * 40)
        second = add_model(session, "second", repo_id="org/second", revision="2" * 40)
        jobs = [create_job(session, m, benchmark)[0].id for m in (first, second)]
    run_with(db, [jobs[0]], ScriptedEngine())
    client = create_app(settings).test_client()
    for path in ("/benchmarks/tiny-gen", "/api/v1/benchmarks/tiny-gen/leaderboard"):
        assert "second" not in client.get(path).get_data(as_text=True)
    run_with(db, [jobs[1]], ScriptedEngine())
    for path in ("/benchmarks/tiny-gen", "/api/v1/benchmarks/tiny-gen/leaderboard"):
        assert "second" in client.get(path).get_data(as_text=True)


def test_items_of_a_private_split_never_appear_in_run_pages(tmp_path: Path) -> None:
    import sqlalchemy as sa

    settings = Settings(data_dir=tmp_path / "site")
    db = make_engine(settings.resolved_database_url)
    upgrade_database(db)
    loaded = load_benchmark_file(write_benchmark(tmp_path / "b", generation_items(4)))
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, settings.resolved_artifacts_dir)
        model = add_model(session, "m", repo_id="org/m", revision="1" * 40)
        job_id = create_job(session, model, benchmark)[0].id
    run_with(db, [job_id], ScriptedEngine())
    with db.begin() as connection:  # a held-out split (the annotation work adds them)
        connection.execute(sa.text("UPDATE item SET split = 'private' WHERE key = 't-000'"))
    client = create_app(settings).test_client()
    details = client.get(f"/api/v1/jobs/{job_id}/results").get_json()
    assert [s["item"] for s in details["samples"]] == ["t-001", "t-002", "t-003"]
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "t-000" not in page and "t-000" not in str(details)
