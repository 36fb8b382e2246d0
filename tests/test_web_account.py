"""The account page (tokens, pool credentials) and user administration in the web UI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine
from webtools import csrf_token, make_web_app, sign_in

from sabha.platform.db import session_scope
from sabha.platform.domain import AccessToken, PoolCredential, Role, RoleGrant, User
from sabha.platform.services.accounts import create_admin, create_user

PASSWORD = "correct horse battery"


@pytest.fixture
def app(db: Engine, tmp_path: Path) -> Flask:
    with session_scope(db) as session:
        create_admin(session, "admin", PASSWORD)
        create_user(session, "dev", password=PASSWORD, roles=[Role.SUBMITTER])
        create_user(session, "vol", password=PASSWORD, roles=[Role.VOLUNTEER])
        create_user(session, "nobody", password=PASSWORD)
    return make_web_app(db, tmp_path)


def _client(app: Flask, username: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    sign_in(client, username, PASSWORD)
    return client, csrf_token(client.get("/account").get_data(as_text=True))


def _rows(db: Engine, table: type) -> list[sa.Row]:
    with db.connect() as connection:
        return list(connection.execute(sa.select(table)))


def test_token_is_shown_once_and_stored_only_as_a_hash(app: Flask, db: Engine) -> None:
    client, token = _client(app, "dev")
    page = client.get("/account").get_data(as_text=True)
    assert re.findall(r'name="scopes" value="(\w+)"', page) == ["submit"]
    created = client.post(
        "/account/tokens",
        data={"name": "laptop", "scopes": "submit", "expires_in_days": "30", "csrf_token": token},
    )
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    plaintext = re.search(r"<code>(sabha_pat_[^<]+)</code>", created.get_data(as_text=True))
    assert plaintext, "the new token is not on the page"
    secret = plaintext.group(1)
    (row,) = _rows(db, AccessToken)
    assert row.name == "laptop" and row.scopes == ["submit"]
    assert all(secret not in str(value) for value in row)  # no plaintext in any column
    listing = client.get("/account").get_data(as_text=True)
    assert secret not in listing and "laptop" in listing and secret[:20] in listing


def test_token_scopes_beyond_my_roles_are_refused(app: Flask, db: Engine) -> None:
    client, token = _client(app, "dev")
    refused = client.post(
        "/account/tokens",
        data={"name": "sneaky", "scopes": "admin", "expires_in_days": "30", "csrf_token": token},
    )
    assert refused.status_code == 403
    assert "may not hold tokens with scope admin" in refused.get_data(as_text=True)
    none = client.post(
        "/account/tokens", data={"name": "x", "expires_in_days": "30", "csrf_token": token}
    )
    assert none.status_code == 400 and "at least one scope" in none.get_data(as_text=True)
    assert _rows(db, AccessToken) == []


def test_revoking_a_token_and_not_someone_elses(app: Flask, db: Engine) -> None:
    dev, dev_csrf = _client(app, "dev")
    dev.post(
        "/account/tokens",
        data={"name": "ci", "scopes": "submit", "expires_in_days": "7", "csrf_token": dev_csrf},
    )
    (row,) = _rows(db, AccessToken)
    other, other_csrf = _client(app, "vol")
    refused = other.post(f"/account/tokens/{row.id}/revoke", data={"csrf_token": other_csrf})
    assert refused.status_code == 404
    assert _rows(db, AccessToken)[0].revoked_at is None
    done = dev.post(f"/account/tokens/{row.id}/revoke", data={"csrf_token": dev_csrf})
    assert done.status_code == 302
    assert _rows(db, AccessToken)[0].revoked_at is not None
    assert "revoked" in dev.get("/account").get_data(as_text=True)


def test_pool_credentials_are_for_volunteers_and_shown_once(app: Flask, db: Engine) -> None:
    dev, dev_csrf = _client(app, "dev")
    assert "Pool credentials" not in dev.get("/account").get_data(as_text=True)
    refused = dev.post("/account/credentials", data={"name": "gpus", "csrf_token": dev_csrf})
    assert refused.status_code == 403 and "volunteer role" in refused.get_data(as_text=True)
    vol, vol_csrf = _client(app, "vol")
    created = vol.post("/account/credentials", data={"name": "lab-gpus", "csrf_token": vol_csrf})
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    client_id, secret = re.findall(r"<code>([^<]+)</code>", created.get_data(as_text=True))[:2]
    (row,) = _rows(db, PoolCredential)
    assert row.client_id == client_id and all(secret not in str(value) for value in row)
    listing = vol.get("/account").get_data(as_text=True)
    assert client_id in listing and secret not in listing
    vol.post(f"/account/credentials/{row.id}/revoke", data={"csrf_token": vol_csrf})
    assert _rows(db, PoolCredential)[0].revoked_at is not None


def test_user_administration_is_for_admins_only(app: Flask) -> None:
    assert app.test_client().get("/admin/users").status_code == 302
    nobody, _ = _client(app, "nobody")
    page = nobody.get("/admin/users")
    assert page.status_code == 403 and "needs the admin role" in page.get_data(as_text=True)
    admin, _ = _client(app, "admin")
    listing = admin.get("/admin/users").get_data(as_text=True)
    assert all(name in listing for name in ("admin", "dev", "vol", "nobody"))


def test_admin_grants_and_revokes_roles(app: Flask, db: Engine) -> None:
    admin, token = _client(app, "admin")
    (nobody_id,) = [u.id for u in _rows(db, User) if u.username == "nobody"]
    granted = admin.post(
        f"/admin/users/{nobody_id}/roles",
        data={"role": "annotator", "csrf_token": token},
        follow_redirects=True,
    )
    assert "nobody now holds the annotator role" in granted.get_data(as_text=True)
    assert {(g.user_id, g.role) for g in _rows(db, RoleGrant)} >= {(nobody_id, "annotator")}
    revoked = admin.post(
        f"/admin/users/{nobody_id}/roles/revoke",
        data={"role": "annotator", "csrf_token": token},
        follow_redirects=True,
    )
    assert "no longer holds the annotator role" in revoked.get_data(as_text=True)
    assert (nobody_id, "annotator") not in {(g.user_id, g.role) for g in _rows(db, RoleGrant)}
    unknown = admin.post(
        f"/admin/users/{nobody_id}/roles", data={"role": "wizard", "csrf_token": token}
    )
    assert unknown.status_code == 400 and "wizard" in unknown.get_data(as_text=True)


def test_the_last_admin_cannot_revoke_their_own_admin_role(app: Flask, db: Engine) -> None:
    admin, token = _client(app, "admin")
    (admin_id,) = [u.id for u in _rows(db, User) if u.username == "admin"]
    refused = admin.post(
        f"/admin/users/{admin_id}/roles/revoke", data={"role": "admin", "csrf_token": token}
    )
    assert refused.status_code == 403 and "last active admin" in refused.get_data(as_text=True)
    assert (admin_id, "admin") in {(g.user_id, g.role) for g in _rows(db, RoleGrant)}
