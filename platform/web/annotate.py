"""The annotator's pages: my languages, the projects I can join, and the way into Label Studio.

``GET /annotate`` lists the annotation projects open in Label Studio in the
signed-in annotator's languages. ``POST /annotate/projects/<id>/join`` gives
them a Label Studio account the first time (its e-mail and password shown
once, never stored or logged) and answers, every time, with a page that links
to the project in Label Studio. Every change is a form POST with a CSRF token.

The answer is a page with a link, never a redirect: Label Studio runs on
another origin, and Sabha's Content-Security-Policy (``form-action 'self'``)
covers the redirects that follow a form post, so a browser would refuse a
redirect to Label Studio without a word (Chromium does). Following a link is
not a form submission, so the strict policy stays.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    Response,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from sabha.platform.db import get_engine, get_session
from sabha.platform.domain import AnnotationProject, Role, User
from sabha.platform.errors import SabhaError, ValidationFailed
from sabha.platform.services.annotators import (
    LabelStudioSignIn,
    join_annotation_project,
    new_labelstudio_password,
    projects_for_annotator,
    set_annotator_languages,
)
from sabha.platform.settings import current_settings

from .auth import current_user, render_refusal, role_required
from .security import limit_endpoint

__all__ = ["blueprint", "init_app"]

blueprint = Blueprint("annotate", __name__, template_folder="templates")
blueprint.register_error_handler(SabhaError, render_refusal)
JOIN_LIMIT = "10 per minute; 50 per day"


def init_app(app: Flask) -> None:
    """Register the annotator's pages."""
    app.register_blueprint(blueprint)
    # Each may run `label-studio reset_password` (seconds of a subprocess): keep them rare.
    for endpoint in ("annotate.join_project", "annotate.new_password"):
        limit_endpoint(app, endpoint, JOIN_LIMIT, methods=["POST"])


def _me() -> User:
    user = current_user()
    assert user is not None  # role_required ran first
    return user


def _render_projects(error: str | None = None, status: int = 200) -> ResponseReturnValue:
    user = _me()
    page = render_template(
        "annotate.html",
        user=user,
        projects=projects_for_annotator(get_session(), user),
        error=error,
    )
    return page, status


@blueprint.get("/annotate")
@role_required(Role.ANNOTATOR)
def projects_page() -> ResponseReturnValue:
    """The projects open in Label Studio in my languages."""
    return _render_projects()


@blueprint.post("/annotate/languages")
@role_required(Role.ANNOTATOR)
def save_languages() -> ResponseReturnValue:
    """Save the languages I annotate in (comma- or space-separated BCP-47 tags)."""
    given = request.form.get("languages", "").replace(",", " ").split()
    try:
        set_annotator_languages(get_engine(), _me().id or 0, given)
    except ValidationFailed as exc:
        return _render_projects(" ".join([exc.message, *exc.problems]), 400)
    return redirect(url_for("annotate.projects_page"))


def _sign_in_page(sign_in: LabelStudioSignIn, title: str, project: str | None = None) -> Response:
    """The page that links to Label Studio (with a new password, shown once); never cached."""
    response = make_response(
        render_template(
            "labelstudio_sign_in.html", title=title, project_title=project, **vars(sign_in)
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.post("/annotate/projects/<dbid:project_id>/join")
@role_required(Role.ANNOTATOR)
def join_project(project_id: int) -> ResponseReturnValue:
    """Join a project: a Label Studio account the first time, and a link to the project."""
    sign_in = join_annotation_project(get_engine(), current_settings(), _me(), project_id)
    project = get_session().get(AnnotationProject, project_id)
    title = project.title if project is not None else None
    if sign_in.password is None:
        return _sign_in_page(sign_in, "Open the project in Label Studio", title)
    return _sign_in_page(sign_in, "Your Label Studio account is ready", title)


@blueprint.post("/annotate/labelstudio-password")
@role_required(Role.ANNOTATOR)
def new_password() -> ResponseReturnValue:
    """Replace my Label Studio password (when I lost it) and show the new one once.

    ``server=private``: my account on the private Label Studio.
    """
    private = request.form.get("server") == "private"
    sign_in = new_labelstudio_password(get_engine(), current_settings(), _me(), private=private)
    return _sign_in_page(sign_in, "Your new Label Studio password")
