"""Helpers for tests of the web app: build it on a test database, read CSRF tokens, sign in."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from sabha.platform.app import create_app
from sabha.platform.settings import Settings

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_web_app(db: Engine, tmp_path: Path, **settings: Any) -> Flask:
    """The Sabha app on the migrated database ``db`` (rate limits off unless asked)."""
    settings.setdefault("rate_limits", False)
    url = db.url.render_as_string(hide_password=False)
    app = create_app(Settings(data_dir=tmp_path / "web-data", database_url=url, **settings))
    app.config["TESTING"] = True
    return app


def csrf_token(html: str) -> str:
    """The CSRF token in a page's first form."""
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(client: FlaskClient, username: str, password: str) -> None:
    """Sign in through the real sign-in form."""
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
