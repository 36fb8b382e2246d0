"""Sign-in: local accounts and OpenID Connect; who is signed in; role checks.

Sessions live on the server (``web_session``): the signed cookie holds
``auth = {"sid": <random session id>}`` and the table its SHA-256. Signing
out ends the session, so a copy of the cookie stops working too; a password
change ends every session of that user; a disabled account is signed out at
its next request. A session also ends after ``SABHA_SESSION_HOURS`` without
use and ``SABHA_SESSION_MAX_HOURS`` after sign-in, whatever the cookie says.

:func:`current_user`, :func:`login_required` and :func:`role_required` are
shared with the JSON API for its session-cookie authentication. On requests
that authenticate by their own credentials (``/oauth/``, or ``/api/`` with
an ``Authorization`` header) :func:`current_user` is always None.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from joserfc.errors import JoseError

from sabha.platform.db import get_engine, get_session, session_scope
from sabha.platform.domain import Role, User, id_of
from sabha.platform.errors import (
    AuthenticationFailed,
    NotFoundError,
    PermissionDenied,
    SabhaError,
)
from sabha.platform.services.accounts import (
    authenticate_password,
    end_web_session,
    find_or_create_oidc_user,
    find_web_session,
    roles_of,
    start_web_session,
    touch_web_session,
    web_session_needs_touch,
)
from sabha.platform.settings import OidcProvider, current_settings

from .security import limit_endpoint, remote_address, uses_cookie_auth

__all__ = [
    "blueprint",
    "current_roles",
    "current_user",
    "init_app",
    "login_required",
    "render_refusal",
    "role_required",
    "sign_in",
    "sign_out",
]

_OAUTH_KEY = "sabha.oidc_clients"

blueprint = Blueprint("auth", __name__, template_folder="templates")
F = TypeVar("F", bound=Callable[..., Any])


def init_app(app: Flask) -> None:
    """Register the sign-in pages and the configured OpenID Connect providers."""
    settings = current_settings(app)
    oauth = OAuth(app)
    for provider in settings.oidc_providers:
        client_kwargs: dict[str, Any] = {
            "scope": provider.scopes,
            "code_challenge_method": "S256",
        }
        if not provider.client_secret:  # a public client: PKCE alone
            client_kwargs["token_endpoint_auth_method"] = "none"
        oauth.register(
            provider.name,
            client_id=provider.client_id,
            client_secret=provider.client_secret or None,
            server_metadata_url=provider.discovery_url,
            client_kwargs=client_kwargs,
        )
    app.extensions[_OAUTH_KEY] = oauth
    app.register_blueprint(blueprint)
    # Sign-in attempts: the form's POSTs and each step of an OIDC sign-in, per client
    # address whatever credentials the request carries (each attempt costs an Argon2 hash).
    limit_endpoint(
        app, "auth.login", settings.rate_limit_login, key_func=remote_address, methods=["POST"]
    )
    for endpoint in ("auth.oidc_login", "auth.oidc_callback"):
        limit_endpoint(app, endpoint, settings.rate_limit_login, key_func=remote_address)

    @app.context_processor
    def _signed_in() -> dict[str, Any]:
        return {"signed_in_user": current_user, "signed_in_roles": current_roles}


# -- who is signed in --------------------------------------------------------------------


def _lifetimes() -> tuple[timedelta, timedelta]:
    """How long a session lasts without use, and at most."""
    settings = current_settings()
    return timedelta(hours=settings.session_hours), timedelta(hours=settings.session_max_hours)


def _cookie_session_id() -> str | None:
    auth = session.get("auth")
    session_id = auth.get("sid") if isinstance(auth, dict) else None
    return session_id if isinstance(session_id, str) else None


def sign_in(user: User) -> None:
    """Start a fresh session for ``user`` (a new id and cookie: no session fixation).

    The session this browser had before ends.
    """
    previous = _cookie_session_id()
    assert user.id is not None
    with session_scope(get_engine()) as db_session:
        if previous:
            end_web_session(db_session, previous)
        session_id = start_web_session(db_session, user.id, _lifetimes()[1])
    session.clear()
    session.permanent = True
    session["auth"] = {"sid": session_id}
    g.pop("sabha_user", None)
    g.pop("sabha_roles", None)


def sign_out() -> None:
    """End this browser's session on the server and clear its cookie."""
    session_id = _cookie_session_id()
    if session_id:
        with session_scope(get_engine()) as db_session:
            end_web_session(db_session, session_id)
    session.clear()
    g.pop("sabha_user", None)
    g.pop("sabha_roles", None)


def current_user() -> User | None:
    """The signed-in user of this request, or None.

    None also when the session ended (signed out, password changed, idle or
    too old), the account was disabled, and on requests that authenticate
    without cookies.
    """
    if "sabha_user" in g:
        return cast(User | None, g.sabha_user)
    user = None
    session_id = _cookie_session_id() if uses_cookie_auth() else None
    if session_id:
        db_session = get_session()
        live = find_web_session(db_session, session_id, *_lifetimes())
        candidate = db_session.get(User, live.user_id) if live is not None else None
        if live is not None and candidate is not None and candidate.is_active:
            user = candidate
            if web_session_needs_touch(live):
                with session_scope(get_engine()) as write:
                    touch_web_session(write, id_of(live))
    g.sabha_user = user
    return user


def current_roles() -> frozenset[Role]:
    """The roles of the signed-in user (empty when nobody is)."""
    if "sabha_roles" not in g:
        user = current_user()
        g.sabha_roles = roles_of(get_session(), user) if user is not None else frozenset()
    return cast(frozenset[Role], g.sabha_roles)


def _refuse_anonymous() -> ResponseReturnValue:
    if request.path.startswith("/api/"):
        raise AuthenticationFailed(
            "This needs a signed-in user.", "Sign in, or send a personal access token."
        )
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def login_required(view: F) -> F:
    """Only for signed-in users: others go to the sign-in page (API: AuthenticationFailed)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return _refuse_anonymous()
        return view(*args, **kwargs)

    return cast(F, wrapper)


def role_required(*roles: Role) -> Callable[[F], F]:
    """Only for signed-in users holding at least one of ``roles``.

    Raises:
        PermissionDenied: the user holds none of them (a 403 page).
    """

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return _refuse_anonymous()
            if not set(roles) & current_roles():
                needed = " or ".join(sorted(roles))
                raise PermissionDenied(
                    f"{user.username} may not do this: it needs the {needed} role.",
                    "Ask an admin of this Sabha to grant the role.",
                )
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


# -- pages -------------------------------------------------------------------------------


def _providers() -> list[OidcProvider]:
    settings = current_settings()
    return settings.oidc_providers


def _safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else the account page (no open redirects)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("account.account_page")


def render_refusal(exc: SabhaError) -> ResponseReturnValue:
    """A service's refusal as a page: 403 not allowed, 404 not found, else 400."""
    if isinstance(exc, PermissionDenied):
        status, title = 403, "Not allowed"
    elif isinstance(exc, NotFoundError):
        status, title = 404, "Not found"
    elif isinstance(exc, AuthenticationFailed):
        status, title = 401, "Not signed in"
    else:
        status, title = 400, "Not done"
    page = render_template(
        "refused.html",
        title=title,
        message=exc.message,
        hint=exc.hint,
        problems=getattr(exc, "problems", None),
    )
    return page, status


blueprint.register_error_handler(SabhaError, render_refusal)


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The sign-in page: a username and password form and one button per OIDC provider."""
    next_page = request.values.get("next")
    if request.method == "GET":
        return render_template("login.html", providers=_providers(), next_page=next_page)
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    error = None
    if not username or not password:
        error = "Enter your username and your password."
    else:
        try:
            with session_scope(get_engine()) as db_session:
                user = authenticate_password(db_session, username, password)
        except AuthenticationFailed:
            # The same words for an unknown user and a wrong password.
            error = "The username or password is not correct."
    if error:
        page = render_template(
            "login.html",
            providers=_providers(),
            next_page=next_page,
            username=username,
            error=error,
        )
        return page, 401 if username and password else 400
    sign_in(user)
    return redirect(_safe_next(next_page))


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session, on the server too (a form POST with its CSRF token)."""
    sign_out()
    return redirect(url_for("leaderboard.index"))


# -- OpenID Connect ----------------------------------------------------------------------


class SignInFailed(SabhaError):
    """An OpenID Connect sign-in did not complete."""


def _provider(name: str) -> tuple[OidcProvider, Any]:
    for provider in _providers():
        if provider.name == name:
            client = current_app.extensions[_OAUTH_KEY].create_client(name)
            return provider, client
    abort(404, description=f"There is no sign-in provider named {name!r}.")


def _callback_url(name: str) -> str:
    """The redirect URI registered at the provider (built on SABHA_PUBLIC_URL when set)."""
    settings = current_settings()
    path = url_for("auth.oidc_callback", name=name)
    if settings.public_url:
        return settings.public_url + path
    return url_for("auth.oidc_callback", name=name, _external=True)


def _check_issuer(provider: OidcProvider, client: Any) -> None:
    try:
        metadata = client.load_server_metadata()
    except (requests.RequestException, ValueError) as exc:
        raise SignInFailed(
            f"Sabha could not read the sign-in settings of {provider.title} "
            f"({provider.discovery_url}): {type(exc).__name__}.",
            "Try again later; if it persists, tell the operator of this Sabha.",
        ) from exc
    if str(metadata.get("issuer", "")).rstrip("/") != provider.issuer:
        raise SignInFailed(
            f"{provider.title} names itself {metadata.get('issuer')!r}, "
            f"not the configured issuer {provider.issuer!r}.",
            "The operator must correct the issuer in SABHA_OIDC_PROVIDERS.",
        )


def _failed(provider: OidcProvider, message: str, status: int = 400) -> ResponseReturnValue:
    page = render_template(
        "refused.html",
        title="Sign-in did not complete",
        message=message,
        hint=f"Nothing was changed. Go back to the sign-in page and try {provider.title} again.",
        retry=True,
    )
    return page, status


@blueprint.get("/login/oidc/<name>")
def oidc_login(name: str) -> ResponseReturnValue:
    """Send the browser to the provider (with state, nonce and a PKCE challenge)."""
    provider, client = _provider(name)
    try:
        _check_issuer(provider, client)
    except SignInFailed as exc:
        return _failed(provider, exc.message, 502)
    session["login_next"] = _safe_next(request.args.get("next"))
    response: Response = client.authorize_redirect(_callback_url(name))
    return response


@blueprint.get("/login/oidc/<name>/callback")
def oidc_callback(name: str) -> ResponseReturnValue:
    """Finish the sign-in: check state, exchange the code, check the ID token, sign in."""
    provider, client = _provider(name)
    if request.args.get("error"):
        reason = request.args.get("error_description") or request.args["error"]
        return _failed(provider, f"{provider.title} did not sign you in: {reason[:200]}.")
    try:
        _check_issuer(provider, client)
        token = client.authorize_access_token()
    except SignInFailed as exc:
        return _failed(provider, exc.message, 502)
    except (AuthlibBaseError, JoseError, ValueError) as exc:
        return _failed(provider, _explain(provider, exc))
    except requests.RequestException as exc:
        return _failed(provider, f"{provider.title} did not answer ({type(exc).__name__}).", 502)
    claims = token.get("userinfo")
    if not claims or not claims.get("sub"):
        return _failed(provider, f"{provider.title} sent no ID token with a subject.")
    email = claims.get("email") if claims.get("email_verified", True) is not False else None
    next_page = session.get("login_next")
    try:
        with session_scope(get_engine()) as db_session:
            user = find_or_create_oidc_user(
                db_session,
                str(claims["iss"]),
                str(claims["sub"]),
                email=email,
                preferred_username=claims.get("preferred_username"),
                name=claims.get("name"),
            )
    except AuthenticationFailed as exc:
        return _failed(provider, exc.message, 403)
    sign_in(user)
    return redirect(_safe_next(next_page))


def _explain(provider: OidcProvider, exc: Exception) -> str:
    """A readable reason for a failed OIDC exchange (no traceback, no secrets)."""
    from authlib.integrations.base_client.errors import MismatchingStateError

    if isinstance(exc, MismatchingStateError):
        return (
            "This sign-in answer does not belong to a sign-in started in this browser "
            "(its state does not match), so it was refused."
        )
    if isinstance(exc, JoseError):
        detail = getattr(exc, "description", None) or exc.__class__.__name__
        return (
            f"The ID token from {provider.title} failed its checks ({detail}), so it was refused."
        )
    description = getattr(exc, "description", None) or getattr(exc, "error", None) or str(exc)
    return f"{provider.title} refused the sign-in: {str(description)[:200]}."
