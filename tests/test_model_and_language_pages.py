"""Model pages (ranks, per-language scores, model-index) and language pages (best models for one
language across benchmarks)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from conftest import ScriptedEngine, run_with
from flask.testing import FlaskClient
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

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
    settings = Settings(data_dir=tmp_path_factory.mktemp("models"))
    db = make_engine(settings.resolved_database_url)
    upgrade_database(db)
    jobs = []
    with session_scope(db) as session:
        artifacts = settings.resolved_artifacts_dir
        registered = {
            b.name: b
            for b in (
                register_benchmark(session, load_benchmark_file(p), artifacts)[0]
                for p in starter_benchmark_paths()
            )
        }
        kisan, safety = registered["kisan-advisory"], registered["indic-safety"]
        echo = add_model(session, "echo", repo_id="org/echo", revision="e" * 40)
        older = add_model(session, "echo-old", repo_id="org/echo", revision="a" * 40)
        noisy = add_model(session, "noisy", repo_id="org/noisy", revision="d" * 40, smoke_test=True)
        add_model(session, "echo-pending", repo_id="org/echo", revision="b" * 40)  # never scored
        for model, benchmark in [(echo, kisan), (echo, safety), (noisy, kisan), (older, kisan)]:
            jobs.append((model.name, create_job(session, model, benchmark)[0].id))
    for name, job_id in jobs:
        answer = _answer_well if name.startswith("echo") else (lambda r: "??")
        run_with(db, [job_id], ScriptedEngine(answer=answer))
    db.dispose()
    return create_app(settings).test_client()


def test_a_model_page_shows_its_rank_and_languages_on_every_benchmark(client: FlaskClient) -> None:
    response = client.get("/models/echo")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Kisan advisory" in page and "Indic safety" in page
    # Kisan advisory ranks echo, echo-old (the same answers: a tie) and noisy.
    assert '1 of 3<br><span class="muted">tied with echo-old</span>' in page
    assert "1 of 1" in page  # only echo is on indic-safety
    for language in ("Hindi", "Swahili", "Tamil"):
        assert language in page
    assert "echo-old" in page and "echo-pending" not in page  # unscored revisions stay private
    assert "model-index:" in page  # the snippet, ready to paste
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="plot"') == 2  # per benchmark
    assert "Tamil (Tamil script): 11.3 (95% CI" in page
    board = client.get("/benchmarks/kisan-advisory").get_data(as_text=True)
    assert 'href="/models/echo"' in board


def test_the_model_json_carries_the_leaderboards_cells(client: FlaskClient) -> None:
    model = client.get("/api/v1/models/echo").get_json()
    board = client.get("/api/v1/benchmarks/kisan-advisory/leaderboard").get_json()
    row = next(r for r in board["rows"] if r["model"]["name"] == "echo")
    kisan = next(s for s in model["scores"] if s["benchmark"]["name"] == "kisan-advisory")
    assert kisan["score"] == row["scores"]["chrf++"]
    assert kisan["languages"] == row["breakdowns"]["language"]
    assert kisan["rank"] == row["rank"] and kisan["ranked"] == 3
    assert set(model["languages"]) >= {"hi-Deva", "sw-Latn", "ta-Taml"}
    assert [r["name"] for r in model["other_revisions"]] == ["echo-old"]


def test_the_model_index_snippet_round_trips_through_huggingface_hub(client: FlaskClient) -> None:
    response = client.get("/models/echo/model-index.yaml")
    assert response.status_code == 200 and response.mimetype == "application/yaml"
    snippet = response.get_data(as_text=True)
    card = ModelCard(f"---\n{snippet}---\n\n# echo\n")
    results = card.data.eval_results
    assert card.data.model_name == "echo" and results
    # The Hub's own parser reads the block back to the same results.
    name, parsed = model_index_to_eval_results(yaml.safe_load(snippet)["model-index"])
    assert name == "echo" and parsed == results
    model = client.get("/api/v1/models/echo").get_json()
    kisan = next(s for s in model["scores"] if s["benchmark"]["name"] == "kisan-advisory")
    overall = next(
        r for r in results if r.dataset_type == "kisan-advisory" and r.dataset_config is None
    )
    assert overall.metric_value == kisan["score"]["value"]
    assert overall.metric_type == "chrf++"
    assert overall.dataset_revision == kisan["benchmark"]["dataset"]["version"]
    assert overall.source_url.endswith(kisan["run_url"])
    tamil = next(
        r for r in results if r.dataset_type == "kisan-advisory" and r.dataset_config == "ta-Taml"
    )
    assert tamil.metric_value == kisan["languages"]["ta-Taml"]["value"]
    assert "95% CI" in str(tamil.metric_name) or "too few" in str(tamil.metric_name)


@pytest.mark.parametrize(
    "path",
    [
        "/models/nobody",
        "/models/echo-pending",  # registered by a submission, nothing published yet
        "/models/" + "a" * 300,
        "/models/..%2Fetc",
        "/models/%E0%A4%B9",
        "/models/echo-pending/model-index.yaml",
    ],
)
def test_unknown_or_unpublished_models_are_404(client: FlaskClient, path: str) -> None:
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("name", ["nobody", "echo-pending", "a" * 300, "..", "%E0%A4%B9", "-x"])
def test_the_model_api_refuses_what_is_not_a_published_model(
    client: FlaskClient, name: str
) -> None:
    response = client.get(f"/api/v1/models/{name}")
    assert response.status_code in (404, 422)
    assert response.mimetype == "application/problem+json"


def test_the_index_lists_languages_by_their_own_names(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    for tag, own_name in [("hi-Deva", "हिन्दी"), ("ta-Taml", "தமிழ்"), ("sw-Latn", "Kiswahili")]:
        assert f'href="/languages/{tag}"' in page
        assert own_name in page
    listed = client.get("/api/v1/languages").get_json()["languages"]
    by_tag = {language["tag"]: language for language in listed}
    assert by_tag["ta-Taml"]["benchmarks"] == 2 and by_tag["sw-Latn"]["benchmarks"] == 1
    assert by_tag["ta-Taml"]["autonym"] == "தமிழ்" and by_tag["ta-Taml"]["direction"] == "ltr"


def test_a_language_page_ranks_models_by_their_score_in_that_language(
    client: FlaskClient,
) -> None:
    language = client.get("/api/v1/languages/ta-Taml").get_json()
    assert [b["benchmark"]["name"] for b in language["boards"]] == [
        "indic-safety",
        "kisan-advisory",
    ]
    kisan = language["boards"][1]["rows"]
    board = client.get("/api/v1/benchmarks/kisan-advisory/leaderboard").get_json()
    tamil = {r["model"]["name"]: r["breakdowns"]["language"]["ta-Taml"] for r in board["rows"]}
    assert [row["model"]["name"] for row in kisan][-1] == "noisy"  # answers nothing well
    assert {row["model"]["name"]: row["score"] for row in kisan} == tamil
    values = [row["score"]["value"] for row in kisan]
    assert values == sorted(values, reverse=True)
    echo, older = (next(r for r in kisan if r["model"]["name"] == n) for n in ("echo", "echo-old"))
    assert echo["rank"] == older["rank"] == 1 and echo["tied_with"] == ["echo-old"]
    page = client.get("/languages/ta-Taml").get_data(as_text=True)
    assert "தமிழ்" in page and "Kisan advisory" in page and 'href="/models/echo"' in page
    # Swahili is measured by one benchmark only.
    swahili = client.get("/api/v1/languages/sw-Latn").get_json()
    assert [b["benchmark"]["name"] for b in swahili["boards"]] == ["kisan-advisory"]


@pytest.mark.parametrize("tag", ["ur-Arab", "xx", "hi-Deva-" + "x" * 40, "..", "%E0%A4%B9"])
def test_languages_no_benchmark_measures_are_404_or_refused(client: FlaskClient, tag: str) -> None:
    assert client.get(f"/languages/{tag}").status_code == 404
    response = client.get(f"/api/v1/languages/{tag}")
    assert response.status_code in (404, 422)
    assert response.mimetype == "application/problem+json"


def test_every_page_names_the_icon_and_favicon_ico_leads_to_it(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert 'rel="icon" type="image/svg+xml" href="/static/leaderboard/favicon.svg"' in page
    moved = client.get("/favicon.ico")
    assert moved.status_code == 308 and moved.location.endswith("/static/leaderboard/favicon.svg")
    icon = client.get("/static/leaderboard/favicon.svg")
    assert icon.status_code == 200 and icon.get_data(as_text=True).startswith("<svg")


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/benchmarks/kisan-advisory",
        "/models/echo",
        "/languages/ta-Taml",
        "/api/v1/models/echo",
    ],
)
def test_public_pages_carry_an_etag_and_answer_304_when_unchanged(
    client: FlaskClient, path: str
) -> None:
    first = client.get(path)
    assert first.status_code == 200 and first.headers["ETag"]
    assert first.headers["Cache-Control"] == "public, max-age=60"
    assert "Cookie" in first.headers["Vary"]
    again = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    stale = client.get(path, headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200 and stale.get_data() == first.get_data()
    # A visitor with a cookie (signed in) is never served from a shared cache.
    client.set_cookie("session", "anything")
    try:
        assert client.get(path).headers["Cache-Control"] == "private, no-cache"
    finally:
        client.delete_cookie("session")


def test_a_dataset_page_counts_items_per_split_and_language_and_offers_its_file(
    client: FlaskClient,
) -> None:
    import io

    import pyarrow.parquet as pq

    board = client.get("/api/v1/benchmarks/kisan-advisory/leaderboard").get_json()
    version = board["benchmark"]["dataset"]["version"]
    page = client.get("/datasets/kisan-advisory").get_data(as_text=True)
    assert version[:12] in page and 'href="/benchmarks/kisan-advisory"' in page
    assert "Tamil (Tamil script)" in page
    link = f"/datasets/kisan-advisory/{version}.parquet"
    assert link in page  # a benchmark's release writes the public items' file
    response = client.get(link)
    assert response.status_code == 200 and response.headers["ETag"] == f'"{version}"'
    rows = pq.read_table(io.BytesIO(response.get_data())).num_rows
    assert rows == board["benchmark"]["dataset"]["items"]
    dataset = client.get("/datasets/kisan-advisory").get_data(as_text=True)
    assert "126 items" in dataset
    data = client.get("/api/v1/datasets/kisan-advisory").get_json()
    newest = data["versions"][0]
    assert newest["version"] == version and newest["parquet_url"] == link
    assert sum(sum(n.values()) for n in newest["splits"].values()) + newest["held_out"] == 126
    assert newest["benchmarks"] == ["kisan-advisory"]
    assert client.get("/api/v1/datasets/nobody").status_code == 404
    for bad in (
        "/datasets/nobody",
        f"/datasets/kisan-advisory/{'0' * 64}.parquet",
        "/datasets/kisan-advisory/x.parquet",
        "/datasets/kisan-advisory/..%2F..%2Fetc%2Fpasswd.parquet",
    ):
        assert client.get(bad).status_code == 404, bad


def test_two_models_compare_side_by_side_per_language(client: FlaskClient) -> None:
    page = client.get("/models/echo/vs/noisy")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # Only the benchmark both are ranked on (noisy never ran indic-safety).
    assert "Kisan advisory" in html and "Indic safety" not in html
    assert (
        "Tamil (Tamil script) · echo: 11.3" in html and "Tamil (Tamil script) · noisy: 0.0" in html
    )
    assert 'fill="#b5651d"' in html  # the second model's colour
    assert client.get("/models/echo").get_data(as_text=True).count('action="/compare"') == 1
    moved = client.get("/compare?a=echo&b=noisy")
    assert moved.status_code == 302 and moved.location.endswith("/models/echo/vs/noisy")
    assert client.get("/compare?a=echo&b=%3Cscript%3E").status_code == 400
    assert client.get("/compare?a=echo").status_code == 400
    assert client.get("/models/echo/vs/nobody").status_code == 404
    assert client.get("/models/echo/vs/echo-pending").status_code == 404  # not published
