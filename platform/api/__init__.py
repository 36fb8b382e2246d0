"""The JSON API under /api/v1: pydantic models, OpenAPI 3.1, problem+json errors.

``init_app(app)`` registers every operation on a ``flask_openapi3.OpenAPI``
app, serves the document at ``/api/v1/openapi.json`` and a readable page at
``/api/v1/docs``; the unversioned ``/api/...`` read paths of earlier releases
redirect to ``/api/v1`` (308). Errors of ``/api/v1`` and ``/oauth`` are problem documents
(``api_error_response``), which the app's error handlers call.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_openapi3 import Info
from werkzeug.wrappers import Response

from sabha.platform.settings import current_settings
from sabha.platform.web.security import limit_endpoint, set_request_size_limit

from ._problems import (
    PROBLEM_MEDIA_TYPE,
    FieldProblem,
    Problem,
    flask_openapi3_validation_error,
    is_api_request,
    response_for_error,
    server_error_response,
)

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "FieldProblem",
    "Problem",
    "api_error_response",
    "init_app",
    "is_api_request",
]

AUDIT_BUNDLE_LIMIT = "30 per minute"

API_DESCRIPTION = (
    "Read benchmarks, leaderboards, runs and job status without signing in; submit models "
    "with a personal access token (Authorization: Bearer sabha_pat_...); pools authenticate "
    "with OAuth2 client credentials at /oauth/token."
)


def api_error_response(exc: BaseException) -> Response:
    """The problem document for any exception raised while answering an API request."""
    response = response_for_error(exc)
    return response if response is not None else server_error_response()


def init_app(app: Flask) -> None:
    """Register the /api/v1 operations, the OpenAPI document and the docs page.

    Args:
        app: A ``flask_openapi3.OpenAPI`` app (``create_app`` makes one).
    """
    from . import _pools, _read, _reviews, _submissions  # noqa: F401  (they add their operations)
    from ._auth import SECURITY_SCHEMES
    from ._blueprint import api
    from ._docs import init_docs
    from ._oauth import init_oauth
    from ._unversioned import init_unversioned

    openapi: Any = app
    openapi.info = Info(title="Sabha API", version="1", description=API_DESCRIPTION)
    openapi.validation_error_status = "422"
    openapi.validation_error_model = Problem
    openapi.validation_error_callback = flask_openapi3_validation_error
    openapi.security_schemes = SECURITY_SCHEMES
    openapi.register_api(api)
    # Shard results may be larger than any other request.
    settings = current_settings(app)
    for endpoint in ("post_result", "post_results_batch"):
        set_request_size_limit(
            app, f"{api.name}.{endpoint}", settings.max_result_bytes, "SABHA_MAX_RESULT_BYTES"
        )
    # A bundle is built on each request (a large job's takes seconds): fewer per caller.
    limit_endpoint(app, f"{api.name}.get_audit_bundle", AUDIT_BUNDLE_LIMIT)
    init_docs(app)
    init_oauth(app)
    init_unversioned(app)
