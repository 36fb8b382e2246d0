"""Cached leaderboard pages never carry one visitor's account links to another."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine
from webtools import make_web_app, sign_in

from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
from sabha.platform.db import session_scope
from sabha.platform.services.accounts import create_user
from sabha.platform.services.benchmarks import register_benchmark

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
