"""The leaderboard pages and CSV export (a Flask blueprint), and their page cache."""

from ._cache import cached_page, cached_view
from ._views import blueprint, init_app

__all__ = ["blueprint", "cached_page", "cached_view", "init_app"]
