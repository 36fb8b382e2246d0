"""Pages of crowded boards stay small and cached: a language's best models with the rest a page
away, a few tied rivals by name, and benchmarks/page_latency.py keeps working (small sizes)."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import REPO
from flask.testing import FlaskClient

from sabha.platform.app import create_app
from sabha.platform.settings import Settings

sys.path.insert(0, str(REPO / "benchmarks"))
import page_latency  # noqa: E402

pytestmark = pytest.mark.postgresql

MODELS = 60  # more than one page (50) of a benchmark in a language


@pytest.fixture
def seeded(tmp_path: Path, migrated_url: str) -> page_latency.Seeded:
    return page_latency.seed(tmp_path, MODELS, 3, 2, migrated_url)


def _client(tmp_path: Path, url: str) -> FlaskClient:
    return create_app(Settings(data_dir=tmp_path / "site", database_url=url)).test_client()


def test_a_language_page_shows_each_benchmarks_best_and_pages_through_the_rest(
    tmp_path: Path, seeded: page_latency.Seeded
) -> None:
    client = _client(tmp_path, seeded.url)
    overview = client.get("/api/v1/languages/hi-Deva").get_json()
    assert [b["benchmark"]["name"] for b in overview["boards"]] == ["scale-a", "scale-b"]
    for board in overview["boards"]:
        assert len(board["rows"]) == 10 and board["total"] == MODELS
    html = client.get("/languages/hi-Deva").get_data(as_text=True)
    assert html.count(f"All {MODELS} models in Hindi (Devanagari script) on") == 2
    assert "/languages/hi-Deva?benchmark=scale-a" in html
    first, second = (
        client.get(f"/api/v1/languages/hi-Deva?benchmark=scale-a&page={n}").get_json()
        for n in (1, 2)
    )
    assert len(first["boards"]) == 1 and first["boards"][0]["benchmark"]["name"] == "scale-a"
    rows = first["boards"][0]["rows"] + second["boards"][0]["rows"]
    assert len(rows) == MODELS and len({r["model"]["name"] for r in rows}) == MODELS
    values = [r["score"]["value"] for r in rows]
    assert values == sorted(values, reverse=True)
    assert rows[:10] == overview["boards"][0]["rows"]
    # every row names at most 5 rivals, counts them all: the rows of its rank
    sizes = Counter(r["rank"] for r in rows)
    assert any(r["tied_count"] > 5 for r in rows)
    for row in rows:
        assert len(row["tied_with"]) == min(row["tied_count"], 5)
        assert row["tied_count"] == sizes[row["rank"]] - 1
    page = client.get("/languages/hi-Deva?benchmark=scale-a&page=2").get_data(as_text=True)
    assert "models 51–60 of 60" in page and "page=1" in page and "Every benchmark in" in page
    page += client.get("/languages/hi-Deva?benchmark=scale-a").get_data(as_text=True)
    assert re.search(r"tied with [^<]+ and \d+ more", page)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("benchmark=scale-a&page=3", 404),
        ("benchmark=nope", 404),
        ("benchmark=bad%20name", 400),
        ("benchmark=scale-a&page=zero", 400),
    ],
)
def test_a_language_board_past_its_end_or_of_no_benchmark_is_refused(
    tmp_path: Path, seeded: page_latency.Seeded, query: str, status: int
) -> None:
    client = _client(tmp_path, seeded.url)
    assert client.get(f"/languages/hi-Deva?{query}").status_code == status
    json_status = client.get(f"/api/v1/languages/hi-Deva?{query}").status_code
    assert json_status == (422 if status == 400 else status)


def test_cached_language_and_model_pages_change_with_the_benchmark(
    tmp_path: Path, seeded: page_latency.Seeded
) -> None:
    client = _client(tmp_path, seeded.url)
    model = seeded.models[3]
    paths = ["/languages/hi-Deva", f"/models/{model}", "/api/v1/languages/hi-Deva"]
    paths.append(f"/api/v1/models/{model}")
    for path in paths:
        assert "Renamed board" not in client.get(path).get_data(as_text=True)
    with sa.create_engine(seeded.url).begin() as connection:
        connection.execute(sa.text("UPDATE benchmark SET title = 'Renamed board'"))
    for path in paths:
        assert "Renamed board" in client.get(path).get_data(as_text=True), path


def test_a_benchmark_page_of_a_crowded_board_names_few_rivals(
    tmp_path: Path, seeded: page_latency.Seeded
) -> None:
    client = _client(tmp_path, seeded.url)
    board = client.get("/api/v1/benchmarks/scale-a/leaderboard").get_json()
    assert all(len(row["tied_with"]) <= 5 for row in board["rows"])
    csv = client.get("/benchmarks/scale-a/leaderboard.csv").get_data(as_text=True)
    widest = max(board["rows"], key=lambda row: row["tied_count"])
    line = next(x for x in csv.splitlines() if re.match(rf"\d+,{widest['model']['name']},", x))
    assert line.count("; ") == widest["tied_count"] - 1  # the export names every rival


def test_the_page_latency_script_seeds_serves_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded = page_latency.seed(tmp_path, 20, 3, 1, f"sqlite:///{tmp_path / 's.db'}")
    figures = page_latency.run(tmp_path, seeded, 6, 2, 2, 1, workers=1)
    assert [f.kind for f in figures] == list(page_latency.urls(seeded, 2))
    for figure in figures:
        assert 0 < figure.p50 <= figure.p99 and figure.max_bytes > 1000
    page_latency.report(figures)
    out = capsys.readouterr().out
    assert re.search(r"^language page +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ +(PASS|FAIL)$", out, re.M)
    assert re.search(r"^all goals met: PASS$|^some goal missed: FAIL$", out, re.M)
