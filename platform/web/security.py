"""Web security for the whole app: CSRF, security headers, session cookies, request
limits, rate limits.

``init_app(app)`` sets all of it up; the rest of this module is what other
adapters (the JSON API) may use:

- :func:`set_content_security_policy` gives one path prefix its own policy
  (the API docs page loads its scripts differently).
- :func:`set_request_size_limit` gives one endpoint a larger body limit than
  ``SABHA_MAX_REQUEST_BYTES`` (shard results). Larger bodies get 413 before
  anything reads them: a problem document under ``/api/`` and ``/oauth/``, a
  page elsewhere. JSON bodies nested deeper than ``MAX_JSON_DEPTH`` get 400.
- :func:`uses_cookie_auth` says whether the current request may be
  authenticated by the session cookie. Requests under ``/oauth/``, and
  requests under ``/api/`` that carry an ``Authorization`` header, are exempt
  from CSRF checks and therefore never authenticate by cookie. Other ``/api/``
  requests are checked for CSRF only when the session holds a signed-in user
  (without one there is nothing a forged request could use).
- :func:`rate_limit_key` is who a request counts against: a credential that
  checks out (a valid token's user or pool, the signed-in user), else the
  client's address (:func:`remote_address`), so a made-up ``Authorization``
  header or cookie buys no budget of its own. Sign-in and the OAuth2
  endpoints count per address only. The lease protocol (`WORKER_PATHS`) has
  its own budget, `rate_limit_worker`, instead of the write limit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, render_template, request, session
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from flask_limiter import ApplicationLimit, Limit, Limiter, RateLimitExceeded
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import BadRequest, LengthRequired, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from sabha.platform.db import get_session
from sabha.platform.services.accounts import identify_bearer_token
from sabha.platform.settings import Settings, current_settings

__all__ = [
    "DEFAULT_CONTENT_SECURITY_POLICY",
    "MAX_JSON_DEPTH",
    "init_app",
    "limit_endpoint",
    "rate_limit_key",
    "remote_address",
    "set_content_security_policy",
    "set_request_size_limit",
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
_SIZE_LIMITS_KEY = "sabha.size_limits"
# Deeper JSON is no honest request's (Label Studio's webhooks nest about ten levels).
MAX_JSON_DEPTH = 64


def init_app(app: Flask) -> None:
    """Protect every route of ``app``: CSRF, headers, cookies, proxies, rate limits.

    Raises:
        SettingsError: in production, the secret key is the default or too short.
    """
    settings = current_settings(app)
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
    app.extensions[_SIZE_LIMITS_KEY] = {}
    app.json = _BoundedJSONProvider.like(app)

    @app.before_request
    def _limit_request_size() -> None:
        # First of all: nothing below (CSRF forms, sign-in, Argon2) reads an oversized body.
        limit, setting = app.extensions[_SIZE_LIMITS_KEY].get(
            request.endpoint or "", (settings.max_request_bytes, "SABHA_MAX_REQUEST_BYTES")
        )
        request.max_content_length = limit
        if request.content_length is not None and request.content_length > limit:
            raise RequestEntityTooLarge(
                f"This request's body has {request.content_length} bytes; this server takes "
                f"at most {limit} bytes here ({setting})."
            )
        if (
            request.content_length is None
            and "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        ):
            raise LengthRequired(
                f"This request's body has no declared size; this server takes bodies of at "
                f"most {limit} bytes here ({setting}), with a Content-Length."
            )

    @app.errorhandler(RequestEntityTooLarge)
    @app.errorhandler(LengthRequired)
    def _too_large(exc: RequestEntityTooLarge | LengthRequired) -> ResponseReturnValue:
        status = exc.code or 413
        detail = exc.description or "The request's body is larger than this server takes."
        fix = "Send a smaller request." if status == 413 else "Send the body with a Content-Length."
        if request.path.startswith(("/api/", "/oauth/")):
            return _problem(
                status, "Content Too Large" if status == 413 else "Length Required", detail, fix
            )
        if request.path.startswith("/hooks/"):  # machine callers: the hooks' own JSON shape
            return jsonify(error=detail, hint=fix), status
        html = render_template("refused.html", title="Not accepted", message=detail, hint=fix)
        return Response(html, status, mimetype="text/html")

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
        if request.path.startswith(("/api/", "/oauth/")):
            return _problem(429, "Too many requests", detail)
        html = render_template("refused.html", title="Too many requests", message=detail)
        return Response(html, 429, mimetype="text/html")


def _problem(status: int, title: str, detail: str, fix: str | None = None) -> Response:
    """An RFC 9457 problem document (the shape the JSON API uses)."""
    extra = {"fix": fix} if fix else {}
    response = jsonify(type="about:blank", title=title, status=status, detail=detail, **extra)
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


def set_request_size_limit(app: Flask, endpoint: str, max_bytes: int, setting: str) -> None:
    """Let requests to ``endpoint`` have bodies up to ``max_bytes`` (named ``setting``)."""
    app.extensions[_SIZE_LIMITS_KEY][endpoint] = (max_bytes, setting)


class _BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, refusing (400) documents nested deeper than ``MAX_JSON_DEPTH``.

    Python's parser would otherwise fail with ``RecursionError`` (a 500) on
    ``[[[[...`` and hand deep documents on to code that recurses.
    """

    @classmethod
    def like(cls, app: Flask) -> _BoundedJSONProvider:
        """A bounded provider that writes JSON as ``app``'s current one does."""
        provider = cls(app)
        for option in ("sort_keys", "ensure_ascii", "compact", "mimetype"):
            setattr(provider, option, getattr(app.json, option))
        return provider

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:
            value = None
            depth = MAX_JSON_DEPTH + 1
        else:
            depth = _json_depth(value, MAX_JSON_DEPTH + 1)
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(
                f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep, "
                "which no request of this API needs."
            )
        return value


def _json_depth(value: Any, stop: int) -> int:
    """How deep ``value``'s arrays and objects nest, counting no further than ``stop``."""
    deepest = 0
    pending = [(value, 1)] if isinstance(value, dict | list) else []
    while pending and deepest < stop:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        children = node.values() if isinstance(node, dict) else node
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _policy_for(path: str) -> str:
    overrides: dict[str, str] = current_app.extensions.get(_CSP_KEY, {})
    matches = [prefix for prefix in overrides if path.startswith(prefix)]
    return overrides[max(matches, key=len)] if matches else DEFAULT_CONTENT_SECURITY_POLICY


# -- rate limits -------------------------------------------------------------------------


def remote_address() -> str:
    """The client's address (the proxy's forwarded one when ``SABHA_TRUSTED_PROXIES`` > 0)."""
    return f"ip:{request.remote_addr or '127.0.0.1'}"


def rate_limit_key() -> str:
    """Who a request counts against: a valid credential's owner, else the client's address.

    ``user:<id>`` for a valid personal access token or a signed-in session,
    ``pool:<id>`` for a valid worker token. Credentials are checked first
    (a hash lookup, no Argon2), so a made-up ``Authorization`` header, a
    revoked token or a signed-out session counts against the address, like
    a request with no credentials at all.
    """
    key: str | None = g.get("sabha_rate_limit_key")
    if key is None:
        key = g.sabha_rate_limit_key = _verified_owner() or remote_address()
    return key


def _verified_owner() -> str | None:
    if not uses_cookie_auth():  # /oauth/, or /api/ with an Authorization header
        kind, _, token = request.headers.get("Authorization", "").partition(" ")
        if request.path.startswith("/api/") and kind.lower() == "bearer" and token.strip():
            return identify_bearer_token(get_session(), token)
        return None
    from .auth import current_user  # auth builds on this module

    user = current_user()
    return f"user:{user.id}" if user is not None else None


# The lease protocol of volunteer pools: every lease, heartbeat and result is a
# write, many a minute for a busy pool, so these paths have their own budget
# (``rate_limit_worker``) instead of the people's write limit.
WORKER_PATHS = ("/api/v1/leases", "/api/v1/pools", "/api/v1/results")


def is_worker_call() -> bool:
    """Whether the request is a call of the lease protocol (see ``WORKER_PATHS``)."""
    path = request.path.rstrip("/")
    return any(path == p or path.startswith(p + "/") for p in WORKER_PATHS)


def _make_limiter(app: Flask, settings: Settings) -> Limiter:
    def is_read() -> bool:
        return request.method not in WRITE_METHODS

    def not_a_person_writing() -> bool:
        # /oauth/ has its own limit per address (rate_limit_oauth, set by the API).
        return is_read() or is_worker_call() or request.path.startswith("/oauth/")

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
