"""Annotators' work in public and for themselves: what next, profiles, item histories.

- ``GET /annotate/next`` (annotator role): the items in my languages that still
  need me, each linked to its task in Label Studio, and my credit.
- ``GET /annotators/<name>``: a public profile; 404 unless its owner opted in,
  the same answer as for a name nobody has.
- ``GET /datasets/<name>/items``: the public items of an annotated dataset's
  newest released version, linked to their histories.
- ``GET /datasets/<name>/items/<item>/history``: who annotated a public item,
  when, and who reviewed it; 404 for held-out items, as for unknown ones.
"""

from __future__ import annotations

from flask import Blueprint, Flask, render_template, request
from flask.typing import ResponseReturnValue

from sabha.platform.db import get_engine, get_session
from sabha.platform.domain import Role
from sabha.platform.errors import SabhaError
from sabha.platform.services.annotation import contribution_of
from sabha.platform.services.annotator_work import next_work_for
from sabha.platform.services.item_history import annotated_items_page, item_history
from sabha.platform.services.labelstudio import labelstudio_task_url
from sabha.platform.services.profiles import public_profile
from sabha.platform.settings import current_settings

from .auth import render_refusal, role_required, signed_in_user

__all__ = ["blueprint", "init_app"]

blueprint = Blueprint("annotators", __name__, template_folder="templates")
blueprint.register_error_handler(SabhaError, render_refusal)


def init_app(app: Flask) -> None:
    """Register the what-next page, public profiles and item histories."""
    app.register_blueprint(blueprint)


@blueprint.get("/annotate/next")
@role_required(Role.ANNOTATOR)
def next_page() -> ResponseReturnValue:
    """The items in my languages that still need me, with links to Label Studio."""
    user = signed_in_user()
    session = get_session()
    work = next_work_for(session, user)
    settings = current_settings()
    links = {
        (item.project_id, item.labelstudio_task_id): labelstudio_task_url(
            settings,
            private=item.private,
            project_id=item.labelstudio_project_id,
            task_id=item.labelstudio_task_id,
        )
        for item in work.items
    }
    titles = {p.project.id: p.project for p in work.projects}
    return render_template(
        "annotate_next.html",
        user=user,
        work=work,
        links=links,
        projects=titles,
        contribution=contribution_of(get_engine(), user.id or 0),
    )


@blueprint.get("/annotators/<name>")
def profile_page(name: str) -> ResponseReturnValue:
    """A public annotator profile (only of those who chose to have one)."""
    return render_template("annotator_profile.html", profile=public_profile(get_session(), name))


@blueprint.get("/datasets/<name>/items")
def dataset_items(name: str) -> ResponseReturnValue:
    """The public items of an annotated dataset's newest version, linked to their histories."""
    page = request.args.get("page", "1")
    number = int(page) if page.isdigit() and len(page) < 7 else 1
    shown = annotated_items_page(get_session(), name, number)
    return render_template("dataset_items.html", page=shown)


@blueprint.get("/datasets/<name>/items/<item>/history")
def history_page(name: str, item: str) -> ResponseReturnValue:
    """Who annotated a public item, when, and who reviewed it."""
    return render_template("item_history.html", history=item_history(get_session(), name, item))
