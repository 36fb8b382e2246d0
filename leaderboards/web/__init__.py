"""The leaderboard pages, JSON API and CSV export (a Flask blueprint)."""

from ._views import blueprint, init_app

__all__ = ["blueprint", "init_app"]
