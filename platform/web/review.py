"""Reviewers' and maintainers' pages: review annotations, and what blocks a release.

``GET /review`` lists the annotations a reviewer can review (each person's
latest annotation of an item, never their own), fewest reviews first, each
with a form to accept it or to reject it with a comment. The form carries the
annotation's version: when the annotation changed since the page was drawn,
the review is refused (409) and the reviewer looks again. ``GET
/annotations/datasets`` shows maintainers, per dataset and language, what
still blocks a release. Every change is a form POST with a CSRF token; the
pages need no script or inline style, within Sabha's content security policy.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from sabha.annotation.gates import ReleaseGates
from sabha.platform.db import get_engine, get_session
from sabha.platform.domain import Role
from sabha.platform.errors import SabhaError, ValidationFailed
from sabha.platform.services.annotation import (
    MAX_COMMENT_CHARS,
    annotated_datasets,
    release_blockers,
    review_annotation,
    review_queue,
)

from .auth import render_refusal, role_required, signed_in_user

__all__ = ["blueprint", "init_app"]

blueprint = Blueprint("review", __name__, template_folder="templates")
_FILTER_LIMIT = 100


def _refusal(exc: SabhaError) -> ResponseReturnValue:
    """A refusal page; a changed annotation is a conflict (409), as in the JSON API."""
    response = make_response(render_refusal(exc))
    status = getattr(exc, "http_status", None)
    if isinstance(status, int):
        response.status_code = status
    return response


blueprint.register_error_handler(SabhaError, _refusal)


def init_app(app: Flask) -> None:
    """Register the review and release-blocker pages."""
    app.register_blueprint(blueprint)


def _filters() -> dict[str, str]:
    """The dataset and language filters of the list (short strings or nothing)."""
    found = {}
    for name in ("dataset", "language"):
        value = request.values.get(name, "").strip()
        if len(value) > _FILTER_LIMIT:
            raise ValidationFailed(
                "The filter is too long.", [f"{name}: at most {_FILTER_LIMIT} characters"]
            )
        if value:
            found[name] = value
    return found


def _page() -> int:
    value = request.args.get("page", "1")
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
        raise ValidationFailed(
            "The page is not a page.", [f"page: {value[:20]!r}"], "Use 1, 2, ..."
        )
    return int(value)


@blueprint.get("/review")
@role_required(Role.REVIEWER)
def review_page() -> ResponseReturnValue:
    """The annotations I can review, fewest reviews first."""
    filters = _filters()
    include_reviewed = request.args.get("include_reviewed") == "1"
    queue = review_queue(
        get_session(),
        signed_in_user(),
        dataset=filters.get("dataset"),
        language=filters.get("language"),
        include_reviewed=include_reviewed,
        page=_page(),
    )
    return render_template(
        "review.html",
        queue=queue,
        filters=filters,
        include_reviewed=include_reviewed,
        max_comment=MAX_COMMENT_CHARS,
    )


@blueprint.post("/review/annotations/<int(max=2147483647):annotation_id>")
@role_required(Role.REVIEWER)
def review_post(annotation_id: int) -> ResponseReturnValue:
    """Record my verdict on the version of an annotation the page showed."""
    recorded = review_annotation(
        get_engine(),
        annotation_id,
        signed_in_user(),
        request.form.get("verdict", ""),
        request.form.get("comment", ""),
        version=request.form.get("version", ""),
    )
    flash(f"Annotation {annotation_id}: {recorded.verdict}.")
    filters = _filters()
    return redirect(
        url_for(
            "review.review_page", dataset=filters.get("dataset"), language=filters.get("language")
        )
    )


@blueprint.get("/annotations/datasets")
@role_required(Role.MAINTAINER, Role.ADMIN)
def blockers_page() -> ResponseReturnValue:
    """Per annotated dataset and language: what still blocks its release."""
    chosen = _filters().get("dataset")
    names = annotated_datasets(get_session())
    shown = [chosen] if chosen else names
    gates = ReleaseGates()
    return render_template(
        "release_blockers.html",
        datasets=[release_blockers(get_engine(), name, gates) for name in shown],
        names=names,
        gates=gates,
    )
