"""The one ``APIBlueprint`` every ``/api/v1`` operation is added to, and response helpers."""

from __future__ import annotations

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel

from ._auth import enforce_scopes
from ._problems import problem_responses

__all__ = ["TAGS", "api", "json_response"]

TAGS = {
    "benchmarks": Tag(name="benchmarks", description="Benchmarks, leaderboards and runs"),
    "jobs": Tag(name="jobs", description="Jobs and the state of each shard"),
    "submissions": Tag(name="submissions", description="Submit models, follow and cancel them"),
    "accounts": Tag(name="accounts", description="Who a token belongs to"),
    "pools": Tag(name="pools", description="Volunteer pools (OAuth2 client credentials)"),
    "reviews": Tag(
        name="reviews", description="Review annotations; what blocks a dataset's release"
    ),
}

# Every operation may answer with these problems (RFC 9457); 404 covers unknown names
# and ids, 422 invalid parameters or bodies.
api = APIBlueprint(
    "api_v1",
    __name__,
    url_prefix="/api/v1",
    abp_responses=problem_responses(400, 404, 422, 429, 503),
    operation_id_callback=lambda name, path, method: name,
)
api.before_request(enforce_scopes)


def json_response(model: BaseModel, status: int = 200) -> Response:
    """A pydantic model as a JSON response (UTF-8, not escaped)."""
    return Response(model.model_dump_json(), status=status, mimetype="application/json")
