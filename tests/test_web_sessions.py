"""Sessions that end when they should, and a secret key nobody else knows.

Sign-ins live on the server (``web_session``): a copy of a cookie taken
before sign-out, a cookie re-signed to look fresh, or one signed with the
published development key of earlier releases signs nobody in. Without
``SABHA_SECRET_KEY`` each data dir makes its own random key once, and every
process on that data dir uses it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import REPO
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine
from webtools import csrf_token, make_web_app, sign_in

from sabha.platform.db import session_scope
from sabha.platform.domain import AccessToken, Role, WebSession, utcnow
from sabha.platform.errors import SettingsError
from sabha.platform.services.accounts import create_user, get_user, set_password
from sabha.platform.settings import DEFAULT_SECRET_KEY, SECRET_KEY_FILE, Settings

PASSWORD = "correct horse battery"
COOKIE = "sabha"


@pytest.fixture
def app(sqlite_db: Engine, tmp_path: Path) -> Flask:
    with session_scope(sqlite_db) as session:
        create_user(session, "asha", password=PASSWORD, roles=[Role.SUBMITTER])
    return make_web_app(sqlite_db, tmp_path, session_hours=2, session_max_hours=10)


def _signed_in(client: FlaskClient) -> bool:
    response = client.get("/account")
    return response.status_code == 200


def _copy_cookie(source: FlaskClient, target: FlaskClient) -> None:
    cookie = source.get_cookie(COOKIE)
    assert cookie is not None
    target.set_cookie(COOKIE, cookie.value)


def _shift(db: Engine, **ago: timedelta) -> None:
    """Move every session's times into the past."""
    now = utcnow()
    with db.begin() as connection:
        connection.execute(sa.update(WebSession).values({k: now - v for k, v in ago.items()}))


def test_a_cookie_copied_before_sign_out_no_longer_signs_in(app: Flask, sqlite_db: Engine) -> None:
    browser = app.test_client()
    sign_in(browser, "asha", PASSWORD)
    thief = app.test_client()
    _copy_cookie(browser, thief)
    # The copy works while the session lives; the thief keeps a CSRF token of its page.
    thief_csrf = csrf_token(thief.get("/account").get_data(as_text=True))
    csrf = csrf_token(browser.get("/account").get_data(as_text=True))
    assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 302

    assert not _signed_in(browser) and not _signed_in(thief)
    # Nor can the copy mint a token (its CSRF token still matches its signed cookie).
    stolen = {"name": "stolen", "scopes": "submit", "expires_in_days": "30"}
    minted = thief.post("/account/tokens", data={**stolen, "csrf_token": thief_csrf})
    assert minted.status_code == 302 and minted.headers["Location"].startswith("/login")
    with sqlite_db.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(AccessToken)).scalar() == 0
        ended = connection.execute(sa.select(WebSession.ended_at)).scalars().all()
    assert len(ended) == 1 and ended[0] is not None


def test_the_cookie_holds_a_session_id_stored_only_as_a_hash(app: Flask, sqlite_db: Engine) -> None:
    browser = app.test_client()
    sign_in(browser, "asha", PASSWORD)
    cookie = browser.get_cookie(COOKIE)
    assert cookie is not None
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    assert serializer is not None
    session_id = serializer.loads(cookie.value)["auth"]["sid"]
    with sqlite_db.connect() as connection:
        (row,) = connection.execute(sa.select(WebSession)).all()
    assert len(session_id) >= 40 and session_id not in repr(tuple(row))


def test_a_new_sign_in_ends_the_browsers_previous_session(app: Flask) -> None:
    browser = app.test_client()
    sign_in(browser, "asha", PASSWORD)
    earlier = app.test_client()
    _copy_cookie(browser, earlier)
    sign_in(browser, "asha", PASSWORD)
    assert _signed_in(browser) and not _signed_in(earlier)


def test_a_password_change_ends_every_session_of_the_user(app: Flask, sqlite_db: Engine) -> None:
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, "asha", PASSWORD)
    sign_in(phone, "asha", PASSWORD)
    with session_scope(sqlite_db) as session:
        set_password(session, get_user(session, "asha"), "a brand new passphrase")
    assert not _signed_in(laptop) and not _signed_in(phone)
    sign_in(laptop, "asha", "a brand new passphrase")
    assert _signed_in(laptop)


def test_a_session_ends_after_its_idle_hours(app: Flask, sqlite_db: Engine) -> None:
    browser = app.test_client()
    sign_in(browser, "asha", PASSWORD)
    _shift(sqlite_db, last_seen_at=timedelta(hours=1, minutes=50))
    assert _signed_in(browser)  # used within SABHA_SESSION_HOURS (2): it lives, and is touched
    _shift(sqlite_db, last_seen_at=timedelta(hours=2, minutes=1))
    assert not _signed_in(browser)


def test_a_session_ends_at_its_maximum_however_it_is_used(app: Flask, sqlite_db: Engine) -> None:
    browser = app.test_client()
    sign_in(browser, "asha", PASSWORD)
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    assert serializer is not None
    _shift(sqlite_db, created_at=timedelta(hours=9, minutes=59), last_seen_at=timedelta(minutes=2))
    assert _signed_in(browser)
    _shift(sqlite_db, created_at=timedelta(hours=10, minutes=1), last_seen_at=timedelta(0))
    # Used a moment ago, and the cookie freshly re-signed with the real key: still over.
    cookie = browser.get_cookie(COOKIE)
    assert cookie is not None
    browser.set_cookie(COOKIE, serializer.dumps(serializer.loads(cookie.value)))
    assert not _signed_in(browser)


def test_a_session_forged_with_the_published_development_key_signs_nobody_in(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    # An admin who signs in through an identity provider has no password hash:
    # with the old constant key the cookie of earlier releases was forgeable from the id.
    import hashlib
    import hmac

    with session_scope(sqlite_db) as session:
        admin = create_user(session, "oidc-admin", roles=[Role.ADMIN])
        admin_id = admin.id
    app = make_web_app(sqlite_db, tmp_path)
    assert app.secret_key != DEFAULT_SECRET_KEY
    forger = Flask("forger")
    forger.secret_key = DEFAULT_SECRET_KEY
    serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
    assert serializer is not None
    check = hmac.new(
        DEFAULT_SECRET_KEY.encode(), f"1:{admin_id}::True".encode(), hashlib.sha256
    ).hexdigest()
    client = app.test_client()
    client.set_cookie(
        COOKIE, serializer.dumps({"auth": {"user": admin_id, "v": 1, "check": check}})
    )
    response = client.get("/admin/users")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_the_development_secret_is_random_private_and_made_once_per_data_dir(
    tmp_path: Path,
) -> None:
    first = Settings(data_dir=tmp_path / "a").resolved_secret_key
    assert len(first) >= 43 and first != DEFAULT_SECRET_KEY
    path = tmp_path / "a" / SECRET_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings(data_dir=tmp_path / "a").resolved_secret_key == first
    assert Settings(data_dir=tmp_path / "b").resolved_secret_key != first
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [SECRET_KEY_FILE]
    # An explicit key wins, and then no file is made.
    assert Settings(data_dir=tmp_path / "c", secret_key="x" * 40).resolved_secret_key == "x" * 40
    assert not (tmp_path / "c").exists()


def test_processes_starting_at_once_on_one_data_dir_share_one_secret(tmp_path: Path) -> None:
    data_dir = tmp_path / "shared"
    code = "from sabha.platform.settings import Settings; print(Settings().resolved_secret_key)"
    env = {**os.environ, "SABHA_DATA_DIR": str(data_dir)}
    env.pop("SABHA_SECRET_KEY", None)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    keys = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert all(process.returncode == 0 for process in processes)
    assert keys == {(data_dir / SECRET_KEY_FILE).read_text().strip()}
    assert sorted(p.name for p in data_dir.iterdir()) == [SECRET_KEY_FILE]  # no leftovers


def test_a_secret_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    Settings(data_dir=tmp_path).resolved_secret_key  # noqa: B018 (made here)
    path = tmp_path / SECRET_KEY_FILE
    path.chmod(0o644)
    with pytest.raises(SettingsError) as refused:
        Settings(data_dir=tmp_path).resolved_secret_key  # noqa: B018
    assert "chmod 600" in str(refused.value) and str(path) in str(refused.value)


def test_production_without_a_secret_key_is_refused_and_makes_no_key_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="SABHA_SECRET_KEY is not set"):
        Settings(env="production", data_dir=tmp_path).check_production()
    assert not (tmp_path / SECRET_KEY_FILE).exists()
