"""Errors of the JSON API as ``application/problem+json`` (RFC 9457).

Every error under ``/api/v1`` and ``/oauth`` is a problem document: ``type``,
``title``, ``status``, ``detail``, a ``fix`` (what to do about it) and, for
invalid input, ``errors``: one ``{field, message, fix}`` per problem found.
"""

from __future__ import annotations

from typing import Any

from flask import Response, json, request
from flask_openapi3.types import ResponseDict
from pydantic import BaseModel, Field, ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Response as BaseResponse

from sabha.platform.errors import (
    AuthenticationFailed,
    DatabaseBusy,
    NotFoundError,
    PermissionDenied,
    PrerequisiteError,
    SabhaError,
    ValidationFailed,
    translate_error,
)

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "FieldProblem",
    "Problem",
    "is_api_request",
    "problem_of",
    "problem_response",
    "problem_responses",
    "response_for_error",
    "validation_problem",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
API_PREFIXES = ("/api/v1/", "/oauth/")


class FieldProblem(BaseModel):
    """One invalid part of a request."""

    field: str = Field(description="Where the problem is, e.g. body.model.revision")
    message: str = Field(description="What is wrong with it")
    fix: str = Field(description="How to fix it")


class Problem(BaseModel):
    """An error, as RFC 9457 describes (``application/problem+json``)."""

    type: str = Field(default="about:blank", description="A URI naming the kind of problem")
    title: str = Field(description="A short summary of the kind of problem")
    status: int = Field(description="The HTTP status code", ge=100, le=599)
    detail: str = Field(description="What went wrong in this request")
    fix: str | None = Field(default=None, description="How to fix it")
    errors: list[FieldProblem] = Field(
        default_factory=list, description="Every invalid field, for validation errors"
    )


def is_api_request() -> bool:
    """Whether the current request is one the API answers with problem documents."""
    return (request.path.rstrip("/") + "/").startswith(API_PREFIXES)


def problem_response(
    status: int,
    detail: str,
    fix: str | None = None,
    *,
    kind: str | None = None,
    errors: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A problem document response.

    Args:
        status: HTTP status.
        detail: What went wrong, naming the thing involved.
        fix: How to fix it.
        kind: The last part of the problem ``type`` URI (``urn:sabha:problem:<kind>``);
            None gives ``about:blank`` (the title is the status phrase).
        errors: Per-field problems.
        headers: Extra response headers (``WWW-Authenticate``, ``Retry-After``).
    """
    return _respond(_problem(status, detail, fix, kind=kind, errors=errors), headers)


def _respond(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(problem.model_dump(mode="json", exclude_none=True), ensure_ascii=False)
    response = Response(body, status=problem.status, mimetype=PROBLEM_MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _problem(
    status: int,
    detail: str,
    fix: str | None,
    *,
    kind: str | None,
    errors: list[FieldProblem] | None,
) -> Problem:
    return Problem(
        type=f"urn:sabha:problem:{kind}" if kind else "about:blank",
        title=HTTP_STATUS_CODES.get(status, "Error"),
        status=status,
        detail=detail,
        fix=fix,
        errors=errors or [],
    )


def _location(loc: tuple[int | str, ...], prefix: str) -> str:
    parts = [prefix, *(str(part) for part in loc)]
    return ".".join(p for p in parts if p)


def _fix_for(error: Any) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "Add this field."
    if kind == "extra_forbidden":
        return "Remove this field; it is not part of the request."
    if kind in {"less_than_equal", "less_than", "greater_than", "greater_than_equal"}:
        bounds = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in ctx.items())
        return f"Give a value that is {bounds}."
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return "Give a value of the documented type (see /api/v1/docs)."
    if kind == "string_too_long":
        return f"Shorten it to at most {ctx.get('max_length')} characters."
    if kind == "string_too_short":
        return f"Give at least {ctx.get('min_length')} characters."
    if kind == "string_pattern_mismatch":
        return f"Give a value matching {ctx.get('pattern')}."
    if kind in {"literal_error", "enum"}:
        return f"Use one of: {ctx.get('expected')}."
    return "Correct the value as the message says."


def validation_problem(exc: ValidationError, location: str = "") -> Response:
    """A 422 problem listing each field pydantic refused (location prefix: body, query...)."""
    errors = [
        FieldProblem(
            field=_location(tuple(e["loc"]), location) or "body",
            message=e["msg"],
            fix=_fix_for(e),
        )
        for e in exc.errors(include_url=False)
    ]
    return problem_response(
        422,
        f"The request has {len(errors)} invalid field(s).",
        "Correct the fields listed under errors and send the request again.",
        kind="validation",
        errors=errors,
    )


def flask_openapi3_validation_error(exc: ValidationError) -> Response:
    """The ``validation_error_callback`` of flask-openapi3: which part failed is guessed
    from the model's title (``...Body``, ``...Query``, ``...Path``)."""
    title = exc.title.lower()
    location = next((p for p in ("query", "path", "header") if title.endswith(p)), "body")
    return validation_problem(exc, location)


def _status_of(error: SabhaError) -> int:
    status = getattr(error, "http_status", None)
    if isinstance(status, int):
        return status
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, AuthenticationFailed):
        return 401
    if isinstance(error, PermissionDenied):
        return 403
    if isinstance(error, DatabaseBusy | PrerequisiteError):
        return 503
    if isinstance(error, ValidationFailed):
        return 422
    return 400


def response_for_error(exc: BaseException) -> BaseResponse | None:
    """The problem response for an exception raised while answering an API request.

    Returns None for exceptions that are bugs (they become a plain 500 problem
    in the caller, with no internals shown).
    """
    if isinstance(exc, HTTPException):
        answer = exc.get_response()  # the response flask-openapi3 aborted with, if any
        if exc.response is not None and answer.mimetype == PROBLEM_MEDIA_TYPE:
            return answer
        status = exc.code or 500
        headers = dict(exc.get_headers())
        headers.pop("Content-Type", None)
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            fix = f"Use one of: {', '.join(sorted(exc.valid_methods))}."  # type: ignore[attr-defined]
        elif status == 404:
            fix = "Check the URL against the API document at /api/v1/docs."
        elif status == 429:
            fix = "Wait a little and send the request again."
        else:
            fix = None
        return problem_response(
            status, exc.description or HTTP_STATUS_CODES.get(status, ""), fix, headers=headers
        )
    translated = translate_error(exc)
    if translated is None:
        return None
    problem = problem_of(translated)
    headers = dict(getattr(translated, "headers", None) or {})
    if problem.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="sabha"')
    return _respond(problem, headers)


def problem_of(error: SabhaError) -> Problem:
    """The problem document a request failing with ``error`` is answered with (no headers)."""
    errors = None
    field_problems = getattr(error, "field_problems", None)
    if field_problems:
        errors = [FieldProblem(field=f, message=m, fix=x) for f, m, x in field_problems]
    elif isinstance(error, ValidationFailed):
        errors = [
            FieldProblem(field=getattr(p, "field", "body"), message=str(p), fix=error.hint or "")
            for p in error.problems
        ]
    return _problem(
        _status_of(error),
        error.message,
        error.hint,
        kind=getattr(error, "problem_type", None),
        errors=errors,
    )


def server_error_response() -> Response:
    """A 500 problem that shows no internals."""
    return problem_response(
        500,
        "The server failed to answer this request.",
        "Try again later; if it keeps failing, please report it as a bug.",
    )


def problem_responses(*statuses: int) -> ResponseDict:
    """OpenAPI ``responses`` entries for problem documents with these statuses."""
    reference = {"$ref": "#/components/schemas/Problem"}
    return {
        str(status): {
            "description": HTTP_STATUS_CODES.get(status, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": reference}},
        }
        for status in statuses
    }
