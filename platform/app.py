"""The Flask application factory. Importing this module starts nothing."""

from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from flask_openapi3 import OpenAPI
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, Map, ValidationError

from .api import api_error_response, is_api_request
from .api import init_app as init_api
from .db import init_app as init_database
from .errors import DatabaseBusy, NotFoundError, PrerequisiteError, translate_error
from .settings import Settings
from .settings import init_app as init_settings
from .wire import MAX_DB_ID

__all__ = ["DbIdConverter", "create_app"]


class DbIdConverter(IntegerConverter):
    """``<dbid:name>`` in a page's URL: a row id from 1 to ``MAX_DB_ID``.

    Any other number matches no route (404), so ``/runs/2**63`` never reaches
    the database, whose ``integer`` columns could not hold it.
    """

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, min=1, max=MAX_DB_ID)

    def to_python(self, value: str) -> int:
        if len(value) > len(str(MAX_DB_ID)):
            raise ValidationError()
        return int(super().to_python(value))


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app: leaderboard pages, JSON API and data cards.

    Args:
        settings: Settings to use; read from ``SABHA_*`` variables when omitted.

    Raises:
        SettingsError: production settings that are unsafe (``Settings.check_production``),
            or a damaged secret key file.
    """
    from sabha.leaderboards.web import init_app as init_leaderboard
    from sabha.platform.web import init_app as init_web

    from .web.labelstudio_hooks import init_app as init_labelstudio_hooks

    settings = settings or Settings()
    settings.check_production()  # before a data dir's own key would be made for it
    app = OpenAPI(__name__, doc_ui=False)
    app.config["SECRET_KEY"] = settings.resolved_secret_key
    app.url_map.converters["dbid"] = DbIdConverter
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    init_settings(app, settings)
    init_database(app)
    init_leaderboard(app)
    init_web(app)
    init_api(app)
    init_labelstudio_hooks(app)

    @app.errorhandler(NotFoundError)
    def _not_found(exc: NotFoundError) -> ResponseReturnValue:
        from flask import render_template, request

        if is_api_request():
            return api_error_response(exc)
        if request.path.startswith("/api/"):
            return jsonify(error=exc.message, hint=exc.hint), 404
        return render_template("error.html", message=exc.message, hint=exc.hint), 404

    @app.errorhandler(Exception)
    def _translated(exc: Exception) -> ResponseReturnValue:
        from flask import render_template, request

        if isinstance(exc, HTTPException):
            return exc
        if is_api_request() and translate_error(exc) is not None:
            return api_error_response(exc)
        translated = translate_error(exc)
        if translated is None:
            raise exc
        status = 503 if isinstance(translated, DatabaseBusy | PrerequisiteError) else 400
        if request.path.startswith("/api/"):
            return jsonify(error=translated.message, hint=translated.hint), status
        return render_template(
            "error.html", message=translated.message, hint=translated.hint
        ), status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        from flask import request

        if is_api_request():
            return api_error_response(exc)
        if request.path.startswith("/api/"):
            return jsonify(error=exc.description), exc.code or 500
        return exc

    return app
