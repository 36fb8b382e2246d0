"""The Flask application factory. Importing this module starts nothing."""

from __future__ import annotations

from flask import Flask, g, jsonify
from flask.typing import ResponseReturnValue
from sqlmodel import Session
from werkzeug.exceptions import HTTPException

from .errors import NotFoundError
from .settings import Settings

__all__ = ["create_app", "get_session"]


def init_database(app: Flask, settings: Settings) -> None:
    """Give the app one engine and a session per request."""
    from .db import make_engine

    engine = make_engine(settings.resolved_database_url)
    app.extensions["sabha.db"] = engine

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("sabha_session", None)
        if session is not None:
            session.close()


def get_session() -> Session:
    """The request's database session."""
    from flask import current_app

    if "sabha_session" not in g:
        g.sabha_session = Session(current_app.extensions["sabha.db"])
    session: Session = g.sabha_session
    return session


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app: leaderboard pages, JSON API and data cards.

    Args:
        settings: Settings to use; read from ``SABHA_*`` variables when omitted.
    """
    from sabha.leaderboards.web import init_app as init_leaderboard

    settings = settings or Settings()
    app = Flask(__name__)
    app.config["SECRET_KEY"] = settings.secret_key
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["sabha.settings"] = settings
    init_database(app, settings)
    init_leaderboard(app)

    @app.errorhandler(NotFoundError)
    def _not_found(exc: NotFoundError) -> ResponseReturnValue:
        from flask import render_template, request

        if request.path.startswith("/api/"):
            return jsonify(error=exc.message, hint=exc.hint), 404
        return render_template("error.html", message=exc.message, hint=exc.hint), 404

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        from flask import request

        if request.path.startswith("/api/"):
            return jsonify(error=exc.description), exc.code or 500
        return exc

    return app
