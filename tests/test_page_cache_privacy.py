"""Cached leaderboard pages never carry one visitor's account links to another, nor outlive
the board they were rendered from."""

from __future__ import annotations

from pathlib import Path

from conftest import ScriptedEngine, run_with
from sqlalchemy.engine import Engine
from sqlmodel import select
from webtools import make_web_app, sign_in

from sabha.leaderboards.board import rebuild_leaderboard
from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import LeaderboardEntry, Score
from sabha.platform.services.accounts import create_user
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job

PASSWORD = "a long enough password 1"


def test_a_cached_leaderboard_page_shows_each_visitor_their_own_header(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    with session_scope(sqlite_db) as session:
        for path in starter_benchmark_paths():
            register_benchmark(session, load_benchmark_file(path), tmp_path / "artifacts")
        create_user(session, "mwandishi-wa-siri", password=PASSWORD, roles=("admin",))
    app = make_web_app(sqlite_db, tmp_path)
    signed_in, stranger = app.test_client(), app.test_client()
    sign_in(signed_in, "mwandishi-wa-siri", PASSWORD)
    mine = signed_in.get("/benchmarks/kisan-advisory").get_data(as_text=True)
    assert "mwandishi-wa-siri" in mine and "Sign out" in mine
    theirs = stranger.get("/benchmarks/kisan-advisory").get_data(as_text=True)
    assert "mwandishi-wa-siri" not in theirs and "Sign out" not in theirs
    assert "Sign in" in theirs
    # and the other way round: a page first rendered for a stranger.
    assert "Sign in" in stranger.get("/benchmarks/indic-safety").get_data(as_text=True)
    again = signed_in.get("/benchmarks/indic-safety").get_data(as_text=True)
    assert "mwandishi-wa-siri" in again


def test_a_rebuilt_board_is_never_served_from_the_cache(sqlite_db: Engine, tmp_path: Path) -> None:
    """A rebuild that gives the rows their old ids and count (SQLite reuses the ids of
    deleted rows) still changes every cached page: a score withdrawn or re-scored must
    not stay on the site. Keyed on the rows alone, the old page came back."""
    with session_scope(sqlite_db) as session:
        benchmarks = [
            register_benchmark(session, load_benchmark_file(p), tmp_path / "artifacts")[0]
            for p in starter_benchmark_paths()
        ]
        kisan = next(b for b in benchmarks if b.name == "kisan-advisory")
        model = add_model(session, "echo", repo_id="org/echo", revision="e" * 40)
        job_id = create_job(session, model, kisan)[0].id
    run_with(sqlite_db, [job_id], ScriptedEngine(answer=lambda r: "safe"))
    client = make_web_app(sqlite_db, tmp_path).test_client()
    pages = ("/benchmarks/kisan-advisory", "/models/echo", "/languages/hi-Deva")
    before = {path: client.get(path).get_data(as_text=True) for path in pages}
    with session_scope(sqlite_db) as session:
        ids = sorted(e.id for e in session.exec(select(LeaderboardEntry)))
        for score in session.exec(select(Score).where(Score.metric == "chrf++")):
            score.value, score.ci_low, score.ci_high = 87.5, 80.0, 95.0
            session.add(score)
        session.flush()
        rebuild_leaderboard(session, kisan)
        session.flush()
        assert sorted(e.id for e in session.exec(select(LeaderboardEntry))) == ids  # reused
    for path in pages:
        after = client.get(path).get_data(as_text=True)
        assert after != before[path] and "87.5" in after, path
