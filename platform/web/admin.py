"""User administration for admins: every user with their roles; grant and revoke roles."""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session

from sabha.platform.db import get_engine, get_session, session_scope
from sabha.platform.domain import Role, User
from sabha.platform.errors import NotFoundError, SabhaError, ValidationFailed
from sabha.platform.services.accounts import grant_role as grant
from sabha.platform.services.accounts import list_users, roles_of
from sabha.platform.services.accounts import revoke_role as revoke

from .auth import current_user, render_refusal, role_required

__all__ = ["blueprint", "init_app"]

blueprint = Blueprint("admin", __name__, template_folder="templates")
blueprint.register_error_handler(SabhaError, render_refusal)


def init_app(app: Flask) -> None:
    """Register the user administration pages."""
    app.register_blueprint(blueprint)


@blueprint.get("/admin/users")
@role_required(Role.ADMIN)
def users_page() -> ResponseReturnValue:
    """Every user, their roles, and forms to change them."""
    session = get_session()
    rows = []
    for user in list_users(session):
        roles = roles_of(session, user)
        rows.append(
            {"user": user, "roles": sorted(roles), "missing": [r for r in Role if r not in roles]}
        )
    return render_template("admin_users.html", rows=rows)


def _role_from_form() -> Role:
    value = request.form.get("role", "")
    try:
        return Role(value)
    except ValueError:
        raise ValidationFailed(
            "The role is not known.",
            [f"role: {value!r} is not a role"],
            f"Use one of: {', '.join(r.value for r in Role)}.",
        ) from None


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"There is no user with id {user_id}.", "Pick a user from the list.")
    return user


@blueprint.post("/admin/users/<dbid:user_id>/roles")
@role_required(Role.ADMIN)
def grant_role(user_id: int) -> ResponseReturnValue:
    """Grant the role named in the form to a user."""
    role = _role_from_form()
    with session_scope(get_engine()) as session:
        user = _user(session, user_id)
        grant(session, user, role, granted_by=current_user())
        flash(f"{user.username} now holds the {role.value} role.")
    return redirect(url_for("admin.users_page"))


@blueprint.post("/admin/users/<dbid:user_id>/roles/revoke")
@role_required(Role.ADMIN)
def revoke_role(user_id: int) -> ResponseReturnValue:
    """Take the role named in the form from a user."""
    role = _role_from_form()
    with session_scope(get_engine()) as session:
        user = _user(session, user_id)
        held = revoke(session, user, role)
        flash(
            f"{user.username} no longer holds the {role.value} role."
            if held
            else f"{user.username} did not hold the {role.value} role."
        )
    return redirect(url_for("admin.users_page"))
