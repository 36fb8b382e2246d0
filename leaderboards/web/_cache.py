"""Rendered leaderboard pages (HTML and JSON), kept until their leaderboard changes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app

from sabha.platform.db import get_session

from ..board import leaderboard_version

__all__ = ["cached_page", "init_page_cache"]

# One cache per app: two apps in one process (tests, several sites) may serve
# different databases with the same benchmark names and versions.
_APP_KEY = "sabha.page_cache"
T = TypeVar("T")


class _PageCache:
    """Rendered pages by key (LRU)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.pages: OrderedDict[tuple[object, ...], Any] = OrderedDict()
        self.lock = threading.Lock()

    def get_or_render(self, key: tuple[object, ...], render: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self.pages:
                self.pages.move_to_end(key)
                return self.pages[key]
        value = render()
        with self.lock:
            self.pages[key] = value
            while len(self.pages) > self.size:
                self.pages.popitem(last=False)
        return value


def init_page_cache(app: Flask) -> None:
    """Give the app an empty page cache."""
    app.extensions[_APP_KEY] = _PageCache()


def cached_page(kind: str, name: str, page: int, render: Callable[[], T]) -> T:
    """Page ``page`` of benchmark ``name``'s leaderboard as ``kind`` (``html``, ``json``).

    Rendered by ``render`` the first time, then kept until the leaderboard
    changes (``board.leaderboard_version``).
    """
    pages: _PageCache = current_app.extensions[_APP_KEY]
    key = (kind, name, page, leaderboard_version(get_session(), name))
    value: T = pages.get_or_render(key, render)
    return value
