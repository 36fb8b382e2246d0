"""Accounts in the web UI and web security for the whole app.

``init_app(app)`` sets up security (CSRF, headers, session cookies, rate
limits; :mod:`.security`), sign-in with local accounts and OpenID Connect
(:mod:`.auth`), the account page (:mod:`.account`), a volunteer's pool
pages (:mod:`.pools`), user administration
(:mod:`.admin`), model submissions (:mod:`.submissions`), the annotator's
way into Label Studio (:mod:`.annotate`), what an annotator can do next,
public annotator profiles and items' annotation histories (:mod:`.annotators`),
and reviews and release blockers (:mod:`.review`).

Other adapters (the JSON API) use :func:`current_user`, :func:`login_required`
and :func:`role_required` for session-cookie authentication.
"""

from __future__ import annotations

from flask import Flask

from .auth import current_roles, current_user, login_required, role_required
from .security import set_content_security_policy, uses_cookie_auth

__all__ = [
    "current_roles",
    "current_user",
    "init_app",
    "login_required",
    "role_required",
    "set_content_security_policy",
    "uses_cookie_auth",
]


def init_app(app: Flask) -> None:
    """Add security, sign-in, the account and pools, user administration, submissions,
    annotation, review."""
    from . import (
        account,
        admin,
        annotate,
        annotators,
        auth,
        i18n,
        pools,
        review,
        security,
        submissions,
    )

    i18n.init_app(app)
    security.init_app(app)
    auth.init_app(app)
    account.init_app(app)
    pools.init_app(app)
    admin.init_app(app)
    submissions.init_app(app)
    annotate.init_app(app)
    annotators.init_app(app)
    review.init_app(app)
