"""Paths of earlier releases: each redirects (308) to where it lives now.

One JSON read API: ``GET /api/benchmarks/kisan-advisory/leaderboard?page=2``
answers 308 (the method and body are kept) with ``Location:
/api/v1/benchmarks/kisan-advisory/leaderboard?page=2``. One word for a job: a
finished job's page is ``/jobs/<id>`` (was ``/runs/<id>``) and its JSON
``/api/v1/jobs/<id>/results`` (was ``/api/v1/runs/<id>``); a "run" is a shard
run or a scoring run only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import Flask, redirect, request, url_for
from werkzeug.wrappers import Response

__all__ = ["UNVERSIONED_PATHS", "init_unversioned"]

# Each path of an earlier release and the operation (or page) it moved to.
UNVERSIONED_PATHS = {
    "/api/benchmarks": "api_v1.list_benchmarks",
    "/api/benchmarks/<name>/leaderboard": "api_v1.get_leaderboard",
    "/api/runs/<dbid:job_id>": "api_v1.get_job_results",
    "/api/v1/runs/<dbid:job_id>": "api_v1.get_job_results",
    "/runs/<dbid:job_id>": "leaderboard.job_page",
}


def _redirect_to(endpoint: str) -> Callable[..., Response]:
    def moved(**values: Any) -> Response:
        location = url_for(endpoint, **values)
        if request.query_string:  # kept as the client sent it; raw non-ASCII bytes %-encoded
            location += "?" + quote(request.query_string, safe="&=+%;/?:@,$!*'()~")
        return redirect(location, 308)

    return moved


def init_unversioned(app: Flask) -> None:
    """Make every path of an earlier release redirect to where it lives now."""
    for rule, endpoint in UNVERSIONED_PATHS.items():
        name = "moved" + re.sub(r"\W+", "_", rule)
        app.add_url_rule(rule, name, _redirect_to(endpoint), methods=["GET"])
