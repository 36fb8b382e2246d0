"""Rendered leaderboard pages (HTML and JSON), kept until their leaderboard changes, and the
HTTP caching headers (ETag, Cache-Control) of public read pages."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request

from sabha.platform.db import get_session
from sabha.platform.web.i18n import ui_language

from ..board import leaderboard_version, read_model_version

__all__ = ["PUBLIC_MAX_AGE", "cached_page", "cached_view", "http_caching", "init_page_cache"]

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
    changes (``board.leaderboard_version``); one copy per interface language.
    """
    pages: _PageCache = current_app.extensions[_APP_KEY]
    key = (kind, name, page, ui_language(), leaderboard_version(get_session(), name))
    value: T = pages.get_or_render(key, render)
    return value


def cached_view(kind: str, key: tuple[object, ...], render: Callable[[], T]) -> T:
    """A page built from several leaderboards (a language's, a model's) as ``kind``.

    Rendered by ``render`` the first time, then kept until any leaderboard or
    current benchmark definition changes (``board.read_model_version``); one
    copy per interface language. ``key`` names the page (its path and query).
    """
    pages: _PageCache = current_app.extensions[_APP_KEY]
    full = (kind, *key, ui_language(), read_model_version(get_session()))
    value: T = pages.get_or_render(full, render)
    return value


# Public read pages and their JSON: the same for every visitor but for the header.
_REVALIDATED = {
    "api_v1.get_dataset",
    "api_v1.get_language",
    "api_v1.get_leaderboard",
    "api_v1.get_model",
    "api_v1.list_benchmarks",
    "api_v1.list_languages",
}
PUBLIC_MAX_AGE = 60
"""Seconds a shared cache (a CDN, a phone's browser) may keep a public page without asking."""


def http_caching(response: Response) -> Response:
    """ETag and Cache-Control on public read pages, so a repeat visit costs a 304.

    The ETag is a hash of the body, so it changes exactly when the page does
    (a scoring run landing changes the read model, and so the page). Signed-in
    visitors (a cookie or a token) get ``private, no-cache``: their header
    names them; strangers get ``public`` with ``PUBLIC_MAX_AGE``.
    """
    endpoint = request.endpoint or ""
    if (
        request.method not in ("GET", "HEAD")
        or response.status_code != 200
        or response.direct_passthrough
        or "Cache-Control" in response.headers
        or not (endpoint.startswith("leaderboard.") or endpoint in _REVALIDATED)
        or endpoint == "leaderboard.static"
    ):
        return response
    known = bool(request.cookies) or "Authorization" in request.headers
    response.headers["Cache-Control"] = (
        "private, no-cache" if known else f"public, max-age={PUBLIC_MAX_AGE}"
    )
    response.vary.update(("Cookie", "Authorization", "Accept-Language"))
    response.add_etag()
    response.make_conditional(request)  # 304 with no body where the ETag matches
    return response
