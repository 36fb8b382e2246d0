"""Web security for the whole app: CSRF, security headers, session cookies, rate limits.

``init_app(app)`` sets all of it up; the rest of this module is what other
adapters (the JSON API) may use:

- :func:`set_content_security_policy` gives one path prefix its own policy
  (the API docs page loads its scripts differently).
- :func:`uses_cookie_auth` says whether the current request may be
  authenticated by the session cookie. Requests under ``/oauth/``, and
  requests under ``/api/`` that carry an ``Authorization`` header, are exempt
  from CSRF checks and therefore never authenticate by cookie. Other ``/api/``
  requests are checked for CSRF only when the session holds a signed-in user
  (without one there is nothing a forged request could use).
- :func:`rate_limit_key` is who a request counts against; the lease protocol
  (`WORKER_PATHS`) has its own budget, `rate_limit_worker`, instead of the
  write limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, render_template, request, session
from flask.typing import ResponseReturnValue
from flask_limiter import ApplicationLimit, Limit, Limiter, RateLimitExceeded
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from sabha.platform.settings import Settings

__all__ = [
    "DEFAULT_CONTENT_SECURITY_POLICY",
    "init_app",
    "limit_endpoint",
    "rate_limit_key",
    "remote_address",
    "set_content_security_policy",
    "uses_cookie_auth",
]

DEFAULT_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=(), browsing-topics=()"
)
WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE"]
_CSP_KEY = "sabha.csp"
_LIMITER_KEY = "sabha.limiter"


def init_app(app: Flask) -> None:
    """Protect every route of ``app``: CSRF, headers, cookies, proxies, rate limits.

    Raises:
        SettingsError: in production, the secret key is the default or too short.
    """
    settings: Settings = app.extensions["sabha.settings"]
    settings.check_production()
    production = settings.env == "production"

    app.config.update(
        SESSION_COOKIE_NAME="__Host-sabha" if production else "sabha",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=production,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
        # The token lives as long as the session; a page left open still submits.
        WTF_CSRF_TIME_LIMIT=None,
        # Checked by _protect_from_csrf below, which knows which requests are exempt.
        WTF_CSRF_CHECK_DEFAULT=False,
        PREFERRED_URL_SCHEME="https" if production else "http",
    )
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        # Not X-Forwarded-Prefix: the nginx example does not set it, so a client could.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n
        )

    csrf = CSRFProtect(app)
    app.extensions[_CSP_KEY] = {}

    @app.before_request
    def _protect_from_csrf() -> None:
        g.sabha_cookie_auth = not _authenticates_without_cookies()
        if not g.sabha_cookie_auth:
            return
        if request.path.startswith("/api/") and not session.get("auth"):
            return  # no signed-in cookie to ride on: the API answers 401 itself
        csrf.protect(apply_exemptions=True)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", _policy_for(request.path))
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if production:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response

    app.extensions[_LIMITER_KEY] = _make_limiter(app, settings)

    @app.errorhandler(CSRFError)
    def _csrf_failed(exc: CSRFError) -> ResponseReturnValue:
        detail = (
            "The form was not sent from Sabha's own page, or it has expired "
            f"({exc.description}). Go back, reload the page and send it again."
        )
        if request.path.startswith("/api/"):
            return _problem(400, "CSRF check failed", detail)
        return render_template("refused.html", title="Form expired", message=detail), 400

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded) -> ResponseReturnValue:
        # Flask-Limiter adds Retry-After and the X-RateLimit-* headers to this response.
        detail = f"Too many requests: the limit is {exc.description}. Wait a little and try again."
        if request.path.startswith("/api/"):
            return _problem(429, "Too many requests", detail)
        html = render_template("refused.html", title="Too many requests", message=detail)
        return Response(html, 429, mimetype="text/html")


def _problem(status: int, title: str, detail: str) -> Response:
    """An RFC 9457 problem document (the shape the JSON API uses)."""
    response = jsonify(type="about:blank", title=title, status=status, detail=detail)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def _authenticates_without_cookies() -> bool:
    """Whether this request authenticates by its own credentials, never by cookie.

    ``/oauth/`` endpoints take client credentials; ``/api/`` requests with an
    ``Authorization`` header take a bearer token. A browser never adds such a
    header to a cross-site request by itself, so these need no CSRF token.
    """
    path = request.path
    return path.startswith("/oauth/") or (
        path.startswith("/api/") and "Authorization" in request.headers
    )


def uses_cookie_auth() -> bool:
    """Whether the session cookie may authenticate the current request.

    False for the CSRF-exempt requests (see :func:`_authenticates_without_cookies`),
    so a forged cross-site request can never ride on a signed-in browser.
    """
    return bool(g.get("sabha_cookie_auth", True))


# -- Content-Security-Policy -------------------------------------------------------------


def set_content_security_policy(app: Flask, path_prefix: str, policy: str) -> None:
    """Use ``policy`` instead of the strict default for paths under ``path_prefix``.

    The longest matching prefix wins; a view may also set the header itself.
    """
    app.extensions[_CSP_KEY][path_prefix] = policy


def _policy_for(path: str) -> str:
    overrides: dict[str, str] = current_app.extensions.get(_CSP_KEY, {})
    matches = [prefix for prefix in overrides if path.startswith(prefix)]
    return overrides[max(matches, key=len)] if matches else DEFAULT_CONTENT_SECURITY_POLICY


# -- rate limits -------------------------------------------------------------------------


def remote_address() -> str:
    """The client's address (the proxy's forwarded one when ``SABHA_TRUSTED_PROXIES`` > 0)."""
    return f"ip:{request.remote_addr or '127.0.0.1'}"


def rate_limit_key() -> str:
    """Who a request counts against: its bearer token, the signed-in user, else its address.

    Tokens are hashed first, so the limiter's storage never holds one.
    """
    authorization = request.headers.get("Authorization")
    if authorization:
        return "token:" + hashlib.sha256(authorization.encode()).hexdigest()[:32]
    auth = session.get("auth") if uses_cookie_auth() else None
    if isinstance(auth, dict) and auth.get("user"):
        return f"user:{auth['user']}"
    return remote_address()


# The lease protocol of volunteer pools: every lease, heartbeat and result is a
# write, many a minute for a busy pool, so these paths have their own budget
# (``rate_limit_worker``) instead of the people's write limit.
WORKER_PATHS = ("/api/v1/leases", "/api/v1/pools")


def is_worker_call() -> bool:
    """Whether the request is a call of the lease protocol (see ``WORKER_PATHS``)."""
    path = request.path.rstrip("/")
    return any(path == p or path.startswith(p + "/") for p in WORKER_PATHS)


def _make_limiter(app: Flask, settings: Settings) -> Limiter:
    def is_read() -> bool:
        return request.method not in WRITE_METHODS

    def not_a_person_writing() -> bool:
        return is_read() or is_worker_call()

    def not_a_worker_call() -> bool:
        return not is_worker_call()

    limiter = Limiter(
        key_func=remote_address,
        default_limits=[Limit(settings.rate_limit_default, key_function=remote_address)],
        application_limits=[
            ApplicationLimit(
                settings.rate_limit_write,
                key_function=rate_limit_key,
                scope="writes",
                exempt_when=not_a_person_writing,
            ),
            ApplicationLimit(
                settings.rate_limit_worker,
                key_function=rate_limit_key,
                scope="worker",
                exempt_when=not_a_worker_call,
            ),
        ],
        storage_uri=settings.redis_url or "memory://",
        in_memory_fallback_enabled=bool(settings.redis_url),
        key_prefix=settings.rate_limit_prefix,
        headers_enabled=True,
        enabled=settings.rate_limits,
    )
    limiter.init_app(app)
    return limiter


def limit_endpoint(
    app: Flask,
    endpoint: str,
    limit_value: str,
    *,
    key_func: Callable[[], str] = rate_limit_key,
    methods: list[str] | None = None,
) -> None:
    """Add a rate limit to one registered endpoint (on top of the app-wide ones).

    Args:
        app: The app the endpoint is registered on.
        endpoint: Its endpoint name, e.g. ``"auth.login"``.
        limit_value: e.g. ``"10 per minute"``.
        key_func: Who the limit counts against (default :func:`rate_limit_key`).
        methods: Only these methods count (default: all).
    """
    limiter: Limiter = app.extensions[_LIMITER_KEY]
    view = app.view_functions[endpoint]
    limited: Callable[..., Any] = limiter.limit(
        limit_value, key_func=key_func, methods=methods, override_defaults=False
    )(view)
    app.view_functions[endpoint] = limited
