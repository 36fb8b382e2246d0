"""Sign-in through a real OpenID Connect provider on loopback, and with local accounts."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from oidc_provider import OidcTestProvider, OidcUser, QuietHandler
from sqlalchemy.engine import Engine
from webtools import csrf_token, make_web_app, sign_in
from werkzeug.serving import make_server

from sabha.platform.db import session_scope
from sabha.platform.domain import Identity, User
from sabha.platform.services.accounts import create_admin, create_user, set_password
from sabha.platform.settings import OidcProvider

PASSWORD = "correct horse battery"
ASHA = OidcUser("uni-4711", "asha@example.org", "asha", "आशा वर्मा")


class Site:
    """Sabha and the provider, both served on 127.0.0.1 by werkzeug in threads."""

    def __init__(self, app: Flask, provider: OidcTestProvider) -> None:
        self.provider = provider
        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        provider.allow_redirect_uri(f"{self.url}/login/oidc/test/callback")
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def site(db: Engine, tmp_path: Path) -> Iterator[Site]:
    with OidcTestProvider(ASHA) as provider:
        app = make_web_app(
            db,
            tmp_path,
            oidc_providers=[
                OidcProvider(
                    name="test",
                    title="Test University",
                    issuer=provider.issuer,
                    client_id="sabha-test",
                    client_secret="test-client-secret",
                )
            ],
        )
        with session_scope(db) as session:
            create_admin(session, "admin", PASSWORD)
        site = Site(app, provider)
        try:
            yield site
        finally:
            site.close()


def _web_form(page: str, action: str) -> str:
    """The CSRF token of the form posting to ``action``."""
    match = re.search(rf'<form[^>]*action="{re.escape(action)}".*?</form>', page, flags=re.S)
    assert match, f"no form posts to {action}"
    return csrf_token(match.group(0))


def _users(db: Engine) -> list[tuple[str, int]]:
    with db.connect() as connection:
        return [
            (row.username, row.id)
            for row in connection.execute(sa.select(User.username, User.id).order_by(User.id))
        ]


def _sign_in_with_provider(site: Site) -> tuple[requests.Session, requests.Response]:
    browser = requests.Session()
    page = browser.get(f"{site.url}/login/oidc/test", timeout=30)
    return browser, page


def test_oidc_sign_in_lands_signed_in_with_the_roles_an_admin_granted(
    site: Site, db: Engine
) -> None:
    browser, page = _sign_in_with_provider(site)
    assert page.status_code == 200 and page.url == f"{site.url}/account"
    assert [r.status_code for r in page.history] == [302, 302, 302]  # Sabha, provider, Sabha
    assert "आशा वर्मा" in page.text and "none yet" in page.text
    users = dict(_users(db))
    assert set(users) == {"admin", "asha"}
    with db.connect() as connection:
        identity = connection.execute(sa.select(Identity)).one()
    assert (identity.issuer, identity.subject) == (site.provider.issuer, "uni-4711")

    # An admin grants a role in the web UI.
    admin = requests.Session()
    login = admin.get(f"{site.url}/login", timeout=30)
    admin.post(
        f"{site.url}/login",
        data={"username": "admin", "password": PASSWORD, "csrf_token": csrf_token(login.text)},
        timeout=30,
    )
    users_page = admin.get(f"{site.url}/admin/users", timeout=30)
    action = f"/admin/users/{users['asha']}/roles"
    granted = admin.post(
        site.url + action,
        data={"role": "reviewer", "csrf_token": _web_form(users_page.text, action)},
        timeout=30,
    )
    assert granted.status_code == 200 and "asha now holds the reviewer role" in granted.text

    # Signed out and back in: the same account (linked by issuer and subject), with its role.
    account = browser.get(f"{site.url}/account", timeout=30)
    browser.post(
        f"{site.url}/logout", data={"csrf_token": _web_form(account.text, "/logout")}, timeout=30
    )
    assert browser.get(f"{site.url}/account", timeout=30).url.startswith(f"{site.url}/login")
    page = browser.get(f"{site.url}/login/oidc/test", timeout=30)
    assert page.url == f"{site.url}/account"
    assert re.search(r'class="badge role">reviewer<', page.text)
    assert [name for name, _ in _users(db)] == ["admin", "asha"]


def test_oidc_sign_in_uses_pkce_state_and_nonce(site: Site) -> None:
    _sign_in_with_provider(site)
    asked = site.provider.authorization_requests[-1]
    exchanged = site.provider.token_requests[-1]
    assert asked["code_challenge_method"] == "S256"
    assert asked["state"] and asked["nonce"]
    verifier = exchanged["code_verifier"]
    digest = hashlib.sha256(verifier.encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == asked["code_challenge"]


def _callback_location(site: Site) -> tuple[requests.Session, str]:
    """Start a sign-in and stop at the provider's redirect back to Sabha."""
    browser = requests.Session()
    to_provider = browser.get(f"{site.url}/login/oidc/test", allow_redirects=False, timeout=30)
    back = browser.get(to_provider.headers["Location"], allow_redirects=False, timeout=30)
    location = back.headers["Location"]
    assert location.startswith(f"{site.url}/login/oidc/test/callback?")
    return browser, location


def _assert_not_signed_in(browser: requests.Session, site: Site) -> None:
    page = browser.get(f"{site.url}/account", timeout=30)
    assert page.url.startswith(f"{site.url}/login"), "the browser got signed in"


def test_callback_with_a_forged_state_is_refused_and_changes_nothing(
    site: Site, db: Engine
) -> None:
    browser, location = _callback_location(site)
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["state"] = "forged-" + query["state"]
    exchanges = len(site.provider.token_requests)
    refused = browser.get(urlunsplit(parts._replace(query=urlencode(query))), timeout=30)
    assert refused.status_code == 400
    assert "state does not match" in refused.text and "Traceback" not in refused.text
    assert len(site.provider.token_requests) == exchanges  # the code was never used
    _assert_not_signed_in(browser, site)
    assert [name for name, _ in _users(db)] == ["admin"]


def test_callback_from_another_browser_is_refused(site: Site, db: Engine) -> None:
    """Login CSRF: an attacker's own callback URL, opened in the victim's browser."""
    _attacker, location = _callback_location(site)
    victim = requests.Session()
    refused = victim.get(location, timeout=30)
    assert refused.status_code == 400 and "state does not match" in refused.text
    _assert_not_signed_in(victim, site)
    assert [name for name, _ in _users(db)] == ["admin"]


def test_id_token_with_a_wrong_nonce_is_refused(site: Site, db: Engine) -> None:
    site.provider.nonce_override = "replayed-nonce"
    browser, page = _sign_in_with_provider(site)
    assert page.status_code == 400
    assert "ID token" in page.text and "refused" in page.text and "Traceback" not in page.text
    _assert_not_signed_in(browser, site)
    assert [name for name, _ in _users(db)] == ["admin"]


def test_provider_refusal_is_shown_readably(site: Site) -> None:
    browser, location = _callback_location(site)
    parts = urlsplit(location)
    state = parse_qs(parts.query)["state"][0]
    denied = parts._replace(
        query=urlencode(
            {"error": "access_denied", "error_description": "User said no", "state": state}
        )
    )
    page = browser.get(urlunsplit(denied), timeout=30)
    assert page.status_code == 400 and "User said no" in page.text
    _assert_not_signed_in(browser, site)


def test_unknown_provider_is_not_found(site: Site) -> None:
    page = requests.get(f"{site.url}/login/oidc/nope", timeout=30)
    assert page.status_code == 404


# -- local accounts ----------------------------------------------------------------------


@pytest.fixture
def app(db: Engine, tmp_path: Path) -> Flask:
    with session_scope(db) as session:
        create_user(session, "asha", password=PASSWORD, display_name="آشا")
    return make_web_app(db, tmp_path)


def test_wrong_password_and_unknown_user_read_the_same(app: Flask) -> None:
    client = app.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    pages = [
        client.post("/login", data={"username": name, "password": "nope-nope", "csrf_token": token})
        for name in ("asha", "nobody")
    ]
    assert [p.status_code for p in pages] == [401, 401]
    messages = [re.search(r'class="error"[^>]*>([^<]+)<', p.get_data(as_text=True)) for p in pages]
    assert messages[0] and messages[1] and messages[0].group(1) == messages[1].group(1)
    assert client.get("/account").status_code == 302


def test_sign_in_goes_to_the_page_asked_for_but_never_off_site(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/account")
    assert page.status_code == 302 and page.headers["Location"] == "/login?next=/account"
    token = csrf_token(client.get("/login?next=/account").get_data(as_text=True))
    form = {"username": "asha", "password": PASSWORD, "csrf_token": token}
    response = client.post("/login", data={**form, "next": "/account"})
    assert response.headers["Location"] == "/account"
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        other = app.test_client()
        token = csrf_token(other.get("/login").get_data(as_text=True))
        response = other.post("/login", data={**form, "csrf_token": token, "next": target})
        assert response.headers["Location"] == "/account", target


def test_changing_the_password_ends_existing_sessions(app: Flask, db: Engine) -> None:
    client = app.test_client()
    sign_in(client, "asha", PASSWORD)
    assert client.get("/account").status_code == 200
    with session_scope(db) as session:
        user = session.exec(sa.select(User).where(User.username == "asha")).scalar_one()
        set_password(session, user, "another long password")
    assert client.get("/account").status_code == 302


def test_disabled_account_is_signed_out(app: Flask, db: Engine) -> None:
    client = app.test_client()
    sign_in(client, "asha", PASSWORD)
    with db.begin() as connection:
        connection.execute(sa.update(User).values(is_active=False))
    assert client.get("/account").status_code == 302


def test_sign_in_page_is_right_to_left_safe(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "asha", PASSWORD)
    page = client.get("/account").get_data(as_text=True)
    assert '<span dir="auto">آشا</span>' in page
    assert 'dir="auto">آشا</a>' in page  # the header's account link
