"""The account page: my roles, annotation credit and public profile, tokens, pool credentials
and what my pools did.

Every change is a form POST with a CSRF token; the services decide what is
allowed (a token's scopes within my roles' scopes, pool credentials for
volunteers), and their refusals become readable pages.
"""

from __future__ import annotations

from datetime import UTC, datetime

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

from sabha.platform.db import get_engine, get_session, session_scope
from sabha.platform.domain import ROLE_SCOPES, Role, TokenScope
from sabha.platform.errors import PermissionDenied, SabhaError, ValidationFailed
from sabha.platform.services.accounts import (
    AccessTokenPublic,
    PoolCredentialPublic,
    create_access_token,
    create_pool_credential,
    list_access_tokens,
    list_pool_credentials,
    revoke_access_token,
    revoke_pool_credential,
)
from sabha.platform.services.annotation import contribution_of
from sabha.platform.services.annotators import credit_by_project
from sabha.platform.services.pools import pool_activity
from sabha.platform.services.profiles import PROFILE_NAME_MAX_CHARS, set_profile_name

from .auth import current_roles, login_required, render_refusal, signed_in_user

__all__ = ["blueprint", "init_app"]

blueprint = Blueprint("account", __name__, template_folder="templates")
blueprint.register_error_handler(SabhaError, render_refusal)
EXPIRY_CHOICES = (7, 30, 90, 180, 365)
POOL_ROLES = frozenset({Role.VOLUNTEER, Role.ADMIN})
PROFILE_ROLES = frozenset({Role.ANNOTATOR, Role.REVIEWER})


def init_app(app: Flask) -> None:
    """Register the account pages."""
    app.register_blueprint(blueprint)


def _my_scopes() -> list[TokenScope]:
    scopes: set[TokenScope] = set()
    for role in current_roles():
        scopes |= ROLE_SCOPES[role]
    return sorted(scopes)


def _render_account(error: str | None = None, status: int = 200) -> ResponseReturnValue:
    user = signed_in_user()
    session = get_session()
    roles = current_roles()
    page = render_template(
        "account.html",
        user=user,
        roles=roles,
        scopes=_my_scopes(),
        expiry_choices=EXPIRY_CHOICES,
        tokens=[AccessTokenPublic.of(t) for t in list_access_tokens(session, user)],
        may_run_pools=bool(POOL_ROLES & roles),
        credentials=(
            [PoolCredentialPublic.of(c) for c in list_pool_credentials(session, user)]
            if POOL_ROLES & roles
            else []
        ),
        pools=pool_activity(session, user.id or 0),
        now=datetime.now(UTC),
        contribution=contribution_of(get_engine(), user.id or 0),
        credit=credit_by_project(get_engine(), user.id or 0),
        profile_name_max=PROFILE_NAME_MAX_CHARS,
        error=error,
    )
    return page, status


def _shown_once(title: str, shown: list[tuple[str, str]], usage: str) -> Response:
    """The page that shows a new secret once; no cache may keep it."""
    response = make_response(
        render_template("secret_created.html", title=title, shown=shown, usage=usage)
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/account")
@login_required
def account_page() -> ResponseReturnValue:
    """My roles, tokens and (for volunteers) pool credentials and pools."""
    return _render_account()


@blueprint.post("/account/tokens")
@login_required
def create_token() -> ResponseReturnValue:
    """Create a personal access token and show it once."""
    name = request.form.get("name", "").strip()
    scopes = request.form.getlist("scopes")
    try:
        days = int(request.form.get("expires_in_days", ""))
    except ValueError:
        return _render_account("Choose how many days the token lasts.", 400)
    if not scopes:
        return _render_account("Choose at least one scope for the token.", 400)
    try:
        with session_scope(get_engine()) as session:
            token, plaintext = create_access_token(
                session, signed_in_user(), name, scopes, expires_in_days=days
            )
    except ValidationFailed as exc:
        return _render_account(" ".join([exc.message, *exc.problems]), 400)
    return _shown_once(
        f"Token {token.name!r} created",
        [("Your new personal access token:", plaintext)],
        f"Scopes: {', '.join(token.scopes)}; valid for {days} days. "
        "Use it with `sabha login --server URL` or as `Authorization: Bearer <token>`.",
    )


@blueprint.post("/account/tokens/<dbid:token_id>/revoke")
@login_required
def revoke_token(token_id: int) -> ResponseReturnValue:
    """Revoke one of my tokens."""
    with session_scope(get_engine()) as session:
        revoke_access_token(session, signed_in_user(), token_id)
    return redirect(url_for("account.account_page"))


@blueprint.post("/account/credentials")
@login_required
def create_credential() -> ResponseReturnValue:
    """Create a pool credential (volunteers) and show its secret once."""
    name = request.form.get("name", "").strip()
    try:
        with session_scope(get_engine()) as session:
            credential, secret = create_pool_credential(session, signed_in_user(), name)
    except ValidationFailed as exc:
        return _render_account(" ".join([exc.message, *exc.problems]), 400)
    return _shown_once(
        f"Pool credential {credential.name!r} created",
        [("Client id:", credential.client_id), ("Client secret:", secret)],
        "Give both to your pool's worker; it exchanges them for short-lived tokens "
        "at /oauth/token (OAuth2 client credentials).",
    )


@blueprint.post("/account/credentials/<dbid:credential_id>/revoke")
@login_required
def revoke_credential(credential_id: int) -> ResponseReturnValue:
    """Revoke one of my pool credentials (and its worker tokens)."""
    with session_scope(get_engine()) as session:
        revoke_pool_credential(session, signed_in_user(), credential_id)
    return redirect(url_for("account.account_page"))


@blueprint.post("/account/profile")
@login_required
def save_profile() -> ResponseReturnValue:
    """Make my annotator profile public under a name I choose, or private again.

    ``public`` checked: show the profile under ``profile_name``; unchecked:
    anonymous everywhere (the name is forgotten).
    """
    chosen = request.form.get("profile_name", "") if request.form.get("public") else None
    if chosen is not None and not PROFILE_ROLES & current_roles():
        # Anyone may go (or stay) anonymous; only people who annotate or review may take a
        # public name (a stranger's account must not squat the names annotators will want).
        raise PermissionDenied(
            f"{signed_in_user().username} may not take a public profile name: it is for "
            "annotators and reviewers.",
            "Ask an admin of this Sabha for the annotator role.",
        )
    try:
        with session_scope(get_engine()) as session:
            set_profile_name(session, signed_in_user(), chosen)
    except ValidationFailed as exc:
        return _render_account(" ".join([exc.message, *exc.problems, exc.hint or ""]), 400)
    return redirect(url_for("account.account_page"))
