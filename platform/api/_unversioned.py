"""The unversioned ``/api/...`` read paths of earlier releases: each redirects to ``/api/v1``.

One JSON read API: ``GET /api/benchmarks/kisan-advisory/leaderboard?page=2``
answers 308 (the method and body are kept) with ``Location:
/api/v1/benchmarks/kisan-advisory/leaderboard?page=2``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, redirect, request, url_for
from werkzeug.wrappers import Response

__all__ = ["UNVERSIONED_PATHS", "init_unversioned"]

# Each unversioned path and the /api/v1 operation it moved to.
UNVERSIONED_PATHS = {
    "/api/benchmarks": "api_v1.list_benchmarks",
    "/api/benchmarks/<name>/leaderboard": "api_v1.get_leaderboard",
    "/api/runs/<dbid:job_id>": "api_v1.get_run",
}


def _redirect_to(endpoint: str) -> Callable[..., Response]:
    def moved(**values: Any) -> Response:
        location = url_for(endpoint, **values)
        if request.query_string:  # kept byte for byte, as the client sent it
            location += "?" + request.query_string.decode("latin-1")
        return redirect(location, 308)

    return moved


def init_unversioned(app: Flask) -> None:
    """Make every unversioned read path redirect to its ``/api/v1`` operation."""
    for rule, endpoint in UNVERSIONED_PATHS.items():
        name = "unversioned_" + endpoint.rsplit(".", 1)[1]
        app.add_url_rule(rule, name, _redirect_to(endpoint), methods=["GET"])
