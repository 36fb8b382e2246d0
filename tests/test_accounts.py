"""Users, roles, personal access tokens and pool credentials, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, select

from sabha.platform.db import session_scope
from sabha.platform.domain import (
    AccessToken,
    PoolCredential,
    Role,
    RoleGrant,
    TokenScope,
    User,
    WorkerToken,
    utcnow,
)
from sabha.platform.errors import (
    AuthenticationFailed,
    NotFoundError,
    PermissionDenied,
    SabhaError,
    SettingsError,
    ValidationFailed,
)
from sabha.platform.services.accounts import (
    AccessTokenPublic,
    PoolCredentialPublic,
    authenticate_password,
    create_access_token,
    create_admin,
    create_pool_credential,
    create_user,
    find_or_create_oidc_user,
    get_user,
    grant_role,
    issue_worker_token,
    list_access_tokens,
    list_pool_credentials,
    list_users,
    revoke_access_token,
    revoke_pool_credential,
    revoke_role,
    revoke_worker_token,
    roles_of,
    user_public,
    verify_access_token,
    verify_client_secret,
    verify_worker_token,
)
from sabha.platform.services.users import password_hasher
from sabha.platform.settings import Settings

PASSWORD = "correct horse battery staple"


def _user(db: Engine, username: str = "asha", *roles: Role, **kwargs: Any) -> User:
    with session_scope(db) as session:
        return create_user(session, username, roles=roles, **kwargs)


def _row(db: Engine, table: str, row_id: int) -> dict[str, Any]:
    """Every column of one row, as the database holds it."""
    with db.connect() as connection:
        row = connection.execute(sa.text(f"SELECT * FROM {table} WHERE id = :id"), {"id": row_id})
        return dict(row.one()._mapping)


def _count(db: Engine, table: type[Any]) -> int:
    with Session(db) as session:
        return len(session.exec(select(table)).all())


# -- users -------------------------------------------------------------------------------------


def test_unicode_usernames_work_and_are_unique_regardless_of_case(db: Engine) -> None:
    priya = _user(db, "प्रिया")
    _user(db, "Ana.María")
    with pytest.raises(SabhaError, match="taken"):
        _user(db, "ANA.MARÍA")
    with pytest.raises(SabhaError, match="taken"):  # the same name, decomposed (NFD)
        _user(db, unicodedata.normalize("NFD", "ana.maría"))
    with Session(db) as session:
        assert get_user(session, "प्रिया").id == priya.id
        assert get_user(session, "ana.MARÍA").username == "Ana.María"
        assert get_user(session, priya.id or 0).username == "प्रिया"
        assert [u.username for u in list_users(session)] == ["Ana.María", "प्रिया"]
        with pytest.raises(NotFoundError, match="sabha users list"):
            get_user(session, "nobody")


@pytest.mark.parametrize(
    "username",
    ["", "ab", "a" * 65, "bad\x00name", "new\nline", "has space", "-dash", "1234", "zero\u200bw"],
)
def test_bad_usernames_are_refused_naming_the_field(db: Engine, username: str) -> None:
    with pytest.raises(ValidationFailed) as error:
        _user(db, username)
    assert error.value.problems[0].startswith("username:")
    assert "letters or digits" in str(error.value)
    assert _count(db, User) == 0


@pytest.mark.parametrize("password", ["short", "x" * 11, "x" * 1025])
def test_passwords_outside_the_limits_are_refused(db: Engine, password: str) -> None:
    with pytest.raises(ValidationFailed, match="password"):
        _user(db, "asha", password=password)
    assert _count(db, User) == 0


def test_passwords_are_stored_only_as_argon2id_hashes(db: Engine) -> None:
    user = _user(db, "asha", password=PASSWORD, email="asha@example.org")
    row = _row(db, "user_account", user.id or 0)
    assert row["password_hash"].startswith("$argon2id$")
    assert not any(PASSWORD in str(value) for value in row.values())
    assert "asha@example.org" not in repr(user) and "argon2" not in repr(user)


def test_production_hashes_with_rfc_9106_parameters_and_refuses_the_test_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SABHA_PASSWORD_HASHING")
    strong = password_hasher()
    assert (strong.time_cost, strong.memory_cost, strong.parallelism) == (3, 65536, 4)
    assert "$argon2id$v=19$m=65536,t=3,p=4$" in strong.hash(PASSWORD)
    monkeypatch.setenv("SABHA_PASSWORD_HASHING", "fast-insecure-for-tests")
    assert password_hasher().memory_cost == 8  # what the test suite uses
    key = "k" * 40
    with pytest.raises(SettingsError, match="SABHA_PASSWORD_HASHING"):
        Settings(env="production", secret_key=key).check_production()
    monkeypatch.delenv("SABHA_PASSWORD_HASHING")
    Settings(env="production", secret_key=key).check_production()


def test_wrong_password_and_unknown_user_fail_alike(db: Engine) -> None:
    _user(db, "asha", password=PASSWORD)
    _user(db, "oidc-only")  # no password: signs in through an identity provider
    messages = set()
    for username, password in [
        ("asha", "wrong password here"),
        ("nobody", PASSWORD),
        ("oidc-only", PASSWORD),
        ("asha", PASSWORD + "x" * 1024),
    ]:
        with pytest.raises(AuthenticationFailed) as error:
            with session_scope(db) as session:
                authenticate_password(session, username, password)
        messages.add(str(error.value))
    assert len(messages) == 1 and "username or password is not correct" in messages.pop()


def test_sign_in_records_the_time_and_rehashes_old_parameters(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SABHA_PASSWORD_HASHING", "argon2id")  # the production profile
    user = _user(db, "asha")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with session_scope(db) as session:
        session.get(User, user.id).password_hash = weak  # type: ignore[union-attr]
    with session_scope(db) as session:
        signed_in = authenticate_password(session, "ASHA", PASSWORD)
    assert signed_in.id == user.id and signed_in.last_login_at is not None
    stored = _row(db, "user_account", user.id or 0)["password_hash"]
    assert stored != weak and "m=65536" in stored
    with session_scope(db) as session:  # the new hash still works
        authenticate_password(session, "asha", PASSWORD)


def test_disabled_users_cannot_sign_in(db: Engine) -> None:
    user = _user(db, "asha", password=PASSWORD)
    with session_scope(db) as session:
        session.get(User, user.id).is_active = False  # type: ignore[union-attr]
    with pytest.raises(AuthenticationFailed, match="username or password is not correct"):
        with session_scope(db) as session:
            authenticate_password(session, "asha", PASSWORD)


def test_first_admin_holds_the_admin_role(db: Engine) -> None:
    with session_scope(db) as session:
        admin = create_admin(session, "root-admin", PASSWORD)
        public = user_public(session, admin)
    assert public.roles == [Role.ADMIN]
    assert "email" not in public.model_dump() and "password_hash" not in public.model_dump()


# -- roles -------------------------------------------------------------------------------------


def test_roles_are_granted_once_and_revoked(db: Engine) -> None:
    admin = _user(db, "admin", Role.ADMIN)
    user = _user(db, "asha", Role.SUBMITTER)
    with session_scope(db) as session:
        grant_role(session, user, Role.VOLUNTEER, granted_by=admin)
        grant_role(session, user, "volunteer")  # again: nothing changes
        assert roles_of(session, user) == {Role.SUBMITTER, Role.VOLUNTEER}
        assert revoke_role(session, user, Role.SUBMITTER) is True
        assert revoke_role(session, user, Role.SUBMITTER) is False
        assert roles_of(session, user) == {Role.VOLUNTEER}
    with Session(db) as session:
        grants = session.exec(select(RoleGrant).where(RoleGrant.user_id == user.id)).all()
        assert [(g.role, g.granted_by_id) for g in grants] == [("volunteer", admin.id)]


def test_unknown_role_lists_the_known_ones(db: Engine) -> None:
    user = _user(db, "asha")
    with pytest.raises(ValidationFailed, match="annotator, reviewer, maintainer"):
        with session_scope(db) as session:
            grant_role(session, user, "overlord")


def test_the_last_admin_keeps_the_role(db: Engine) -> None:
    first = _user(db, "first", Role.ADMIN)
    with pytest.raises(PermissionDenied, match="last active admin"):
        with session_scope(db) as session:
            revoke_role(session, first, Role.ADMIN)
    second = _user(db, "second", Role.ADMIN)
    with session_scope(db) as session:
        assert revoke_role(session, first, Role.ADMIN)
        assert roles_of(session, second) == {Role.ADMIN}


# -- external identities -----------------------------------------------------------------------


def test_oidc_users_are_linked_by_issuer_and_subject_never_by_email(db: Engine) -> None:
    _user(db, "asha", email="asha@example.org")
    with session_scope(db) as session:
        first = find_or_create_oidc_user(
            session,
            "https://idp.example.org",
            "sub-1",
            email="asha@example.org",
            preferred_username="asha",
            name="Asha K",
        )
        assert first.username == "asha-2" and first.display_name == "Asha K"
        assert roles_of(session, first) == frozenset()
        again = find_or_create_oidc_user(session, "https://idp.example.org", "sub-1")
        other = find_or_create_oidc_user(
            session, "https://other.example.org", "sub-1", email="asha@example.org"
        )
        weird = find_or_create_oidc_user(session, "https://idp.example.org", "sub-2", email="@x")
    assert again.id == first.id and again.last_login_at is not None
    assert other.id != first.id and other.username == "asha-3"
    assert weird.username == "user"


def test_oidc_sign_in_of_a_disabled_user_is_refused(db: Engine) -> None:
    with session_scope(db) as session:
        user = find_or_create_oidc_user(session, "https://idp", "s", preferred_username="देव")
        assert user.username == "देव"
        user.is_active = False
    with pytest.raises(AuthenticationFailed, match="disabled"):
        with session_scope(db) as session:
            find_or_create_oidc_user(session, "https://idp", "s")


# -- personal access tokens --------------------------------------------------------------------


def _token(db: Engine, user: User, *scopes: str, **kwargs: Any) -> tuple[AccessToken, str]:
    with session_scope(db) as session:
        return create_access_token(session, user, "laptop", scopes or ("submit",), **kwargs)


def _verify(db: Engine, plaintext: str) -> tuple[User, frozenset[TokenScope]]:
    with session_scope(db) as session:
        return verify_access_token(session, plaintext)


def test_access_token_plaintext_is_in_no_column(db: Engine) -> None:
    user = _user(db, "asha", Role.SUBMITTER)
    token, plaintext = _token(db, user)
    assert plaintext.startswith(f"sabha_pat_{token.lookup}_")
    secret = plaintext[len(f"sabha_pat_{token.lookup}_") :]
    assert len(secret) == 43
    row = _row(db, "access_token", token.id or 0)
    for value in row.values():
        assert plaintext not in str(value) and secret not in str(value)
    assert row["token_hash"] == hashlib.sha256(plaintext.encode()).hexdigest()
    verified, scopes = _verify(db, plaintext)
    assert verified.id == user.id and scopes == {TokenScope.SUBMIT}
    public = AccessTokenPublic.of(token)
    assert public.prefix == f"sabha_pat_{token.lookup}"
    assert "token_hash" not in public.model_dump() and plaintext not in public.model_dump_json()


def test_token_scopes_must_fit_the_users_roles(db: Engine) -> None:
    user = _user(db, "asha", Role.SUBMITTER)
    with pytest.raises(PermissionDenied, match="scope admin"):
        _token(db, user, "submit", "admin")
    with pytest.raises(ValidationFailed, match="'everything' is not a scope"):
        _token(db, user, "everything")
    volunteer = _user(db, "vol", Role.VOLUNTEER)
    with pytest.raises(PermissionDenied):
        _token(db, volunteer, "submit")
    assert _count(db, AccessToken) == 0
    reviewer = _user(db, "rev", Role.REVIEWER)
    _, plaintext = _token(db, reviewer, "review", "annotate")
    assert _verify(db, plaintext)[1] == {TokenScope.REVIEW, TokenScope.ANNOTATE}


def test_revoking_a_role_takes_its_scopes_from_existing_tokens(db: Engine) -> None:
    user = _user(db, "asha", Role.SUBMITTER, Role.ANNOTATOR)
    _, plaintext = _token(db, user, "submit", "annotate")
    assert _verify(db, plaintext)[1] == {TokenScope.SUBMIT, TokenScope.ANNOTATE}
    with session_scope(db) as session:
        revoke_role(session, user, Role.SUBMITTER)
    assert _verify(db, plaintext)[1] == {TokenScope.ANNOTATE}
    with session_scope(db) as session:  # granting it back does not widen the token
        grant_role(session, user, Role.ADMIN)
    assert _verify(db, plaintext)[1] == {TokenScope.SUBMIT, TokenScope.ANNOTATE}


def test_expired_revoked_unknown_and_malformed_tokens_are_refused(db: Engine) -> None:
    user = _user(db, "asha", Role.SUBMITTER)
    expired, expired_text = _token(db, user)
    with session_scope(db) as session:
        session.get(AccessToken, expired.id).expires_at = utcnow() - timedelta(seconds=1)  # type: ignore[union-attr]
    revoked, revoked_text = _token(db, user)
    with session_scope(db) as session:
        revoke_access_token(session, user, revoked.id or 0)
    live, live_text = _token(db, user)
    tampered = live_text[:-1] + ("A" if live_text[-1] != "A" else "B")
    unknown = "sabha_pat_0123456789abcdef_" + "x" * 43
    cases = {
        expired_text: "expired on",
        revoked_text: "revoked",
        tampered: "not valid",
        unknown: "not valid",
        "": "not valid",
        "sabha_pat_": "not valid",
        live_text.replace("sabha_pat_", "sabha_wkr_"): "not valid",
        "Bearer " + live_text: "not valid",
        "x" * 100_000: "not valid",
    }
    for plaintext, message in cases.items():
        with pytest.raises(AuthenticationFailed, match=message):
            _verify(db, plaintext)
    assert _verify(db, live_text)[0].id == user.id
    with session_scope(db) as session:
        session.get(User, user.id).is_active = False  # type: ignore[union-attr]
    with pytest.raises(AuthenticationFailed, match="disabled"):
        _verify(db, live_text)


def test_token_use_is_recorded_at_most_once_a_minute(db: Engine) -> None:
    user = _user(db, "asha", Role.SUBMITTER)
    token, plaintext = _token(db, user)
    assert token.last_used_at is None
    _verify(db, plaintext)
    first = _row(db, "access_token", token.id or 0)["last_used_at"]
    assert first is not None
    _verify(db, plaintext)
    assert _row(db, "access_token", token.id or 0)["last_used_at"] == first
    with session_scope(db) as session:
        session.get(AccessToken, token.id).last_used_at = utcnow() - timedelta(minutes=2)  # type: ignore[union-attr]
    _verify(db, plaintext)
    assert _row(db, "access_token", token.id or 0)["last_used_at"] != first


def test_token_lifetime_is_limited(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    user = _user(db, "asha", Role.SUBMITTER)
    for days in (0, -1, 367):
        with pytest.raises(ValidationFailed, match="expires_in_days"):
            _token(db, user, expires_in_days=days)
    token, _ = _token(db, user, expires_in_days=366)
    assert token.expires_at - token.created_at == timedelta(days=366)
    monkeypatch.setenv("SABHA_TOKEN_MAX_DAYS", "30")
    with pytest.raises(ValidationFailed, match="between 1 and 30"):
        _token(db, user, expires_in_days=31)
    with pytest.raises(ValidationFailed, match="token name"):
        with session_scope(db) as session:
            create_access_token(session, user, "", ["submit"])


def test_users_revoke_their_own_tokens_and_admins_anyones(db: Engine) -> None:
    asha = _user(db, "asha", Role.SUBMITTER)
    other = _user(db, "other", Role.SUBMITTER)
    admin = _user(db, "admin", Role.ADMIN)
    token, _ = _token(db, asha)
    with pytest.raises(NotFoundError, match="no access token"):
        with session_scope(db) as session:
            revoke_access_token(session, other, token.id or 0)
    with session_scope(db) as session:
        revoked = revoke_access_token(session, admin, token.id or 0)
        assert revoked.revoked_at is not None
        again = revoke_access_token(session, asha, token.id or 0)
        assert again.revoked_at == revoked.revoked_at
        assert [t.id for t in list_access_tokens(session, asha)] == [token.id]
        assert list_access_tokens(session, other) == []


# -- pool credentials and worker tokens -----------------------------------------------------------


def _credential(db: Engine, owner: User) -> tuple[PoolCredential, str]:
    with session_scope(db) as session:
        return create_pool_credential(session, owner, "lab-a100")


def test_pool_credential_secret_is_stored_only_as_an_argon2_hash(db: Engine) -> None:
    volunteer = _user(db, "vol", Role.VOLUNTEER)
    credential, secret = _credential(db, volunteer)
    assert credential.client_id.startswith("sabha_pool_") and credential.scopes == ["worker"]
    row = _row(db, "pool_credential", credential.id or 0)
    assert row["secret_hash"].startswith("$argon2id$")
    assert not any(secret in str(value) for value in row.values())
    with session_scope(db) as session:
        found = verify_client_secret(session, credential.client_id, secret)
        assert found.id == credential.id and found.last_used_at is not None
    for client_id, wrong in [
        (credential.client_id, secret + "x"),
        ("sabha_pool_unknown", secret),
        (credential.client_id, ""),
    ]:
        with pytest.raises(AuthenticationFailed, match="client id or secret"):
            with session_scope(db) as session:
                verify_client_secret(session, client_id, wrong)
    public = PoolCredentialPublic.of(credential).model_dump_json()
    assert secret not in public and "secret_hash" not in public


def test_only_volunteers_and_admins_create_pool_credentials(db: Engine) -> None:
    submitter = _user(db, "sub", Role.SUBMITTER)
    with pytest.raises(PermissionDenied, match="volunteer role"):
        _credential(db, submitter)
    admin = _user(db, "admin", Role.ADMIN)
    _credential(db, admin)
    assert _count(db, PoolCredential) == 1


def test_revoking_a_pool_credential_revokes_its_worker_tokens(db: Engine) -> None:
    volunteer = _user(db, "vol", Role.VOLUNTEER)
    other = _user(db, "other", Role.VOLUNTEER)
    credential, secret = _credential(db, volunteer)
    with session_scope(db) as session:
        _, plaintext, expires_in = issue_worker_token(session, credential)
        assert verify_worker_token(session, plaintext).id == credential.id
    with pytest.raises(NotFoundError):
        with session_scope(db) as session:
            revoke_pool_credential(session, other, credential.id or 0)
    with session_scope(db) as session:
        revoke_pool_credential(session, volunteer, credential.id or 0)
        assert list_pool_credentials(session, volunteer)[0].revoked_at is not None
    with Session(db) as session:
        assert all(t.revoked_at is not None for t in session.exec(select(WorkerToken)))
    with pytest.raises(AuthenticationFailed):
        with session_scope(db) as session:
            verify_worker_token(session, plaintext)
    with pytest.raises(AuthenticationFailed):
        with session_scope(db) as session:
            verify_client_secret(session, credential.client_id, secret)


def test_worker_tokens_are_short_lived_and_hashed(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SABHA_WORKER_TOKEN_SECONDS", "120")
    volunteer = _user(db, "vol", Role.VOLUNTEER)
    credential, _ = _credential(db, volunteer)
    with session_scope(db) as session:
        token, plaintext, expires_in = issue_worker_token(session, credential)
        with pytest.raises(PermissionDenied, match="scope 'admin'"):
            issue_worker_token(session, credential, "admin")
    assert expires_in == 120 and token.expires_at - token.issued_at == timedelta(seconds=120)
    assert plaintext.startswith(f"sabha_wkr_{token.lookup}_")
    row = _row(db, "worker_token", token.id or 0)
    assert not any(plaintext[27:] in str(value) for value in row.values())
    with session_scope(db) as session:
        session.get(WorkerToken, token.id).expires_at = utcnow() - timedelta(seconds=1)  # type: ignore[union-attr]
    with pytest.raises(AuthenticationFailed, match="expired"):
        with session_scope(db) as session:
            verify_worker_token(session, plaintext)


def test_worker_token_revocation_follows_rfc_7009(db: Engine) -> None:
    volunteer = _user(db, "vol", Role.VOLUNTEER)
    credential, _ = _credential(db, volunteer)
    other, _ = _credential(db, volunteer)
    with session_scope(db) as session:
        _, plaintext, _ = issue_worker_token(session, credential)
        revoke_worker_token(session, "sabha_wkr_not-a-token")  # unknown: not an error
        revoke_worker_token(session, plaintext, other)  # another client's: left alone
        assert verify_worker_token(session, plaintext).id == credential.id
        revoke_worker_token(session, plaintext, credential)
        revoke_worker_token(session, plaintext)  # twice: not an error
    with pytest.raises(AuthenticationFailed):
        with session_scope(db) as session:
            verify_worker_token(session, plaintext)


def test_pool_credentials_stop_when_the_owner_loses_the_volunteer_role(db: Engine) -> None:
    volunteer = _user(db, "vol", Role.VOLUNTEER)
    _user(db, "admin", Role.ADMIN)
    credential, secret = _credential(db, volunteer)
    with session_scope(db) as session:
        _, plaintext, _ = issue_worker_token(session, credential)
        revoke_role(session, volunteer, Role.VOLUNTEER)
    with pytest.raises(AuthenticationFailed):
        with session_scope(db) as session:
            verify_worker_token(session, plaintext)
    with pytest.raises(AuthenticationFailed):
        with session_scope(db) as session:
            verify_client_secret(session, credential.client_id, secret)


# -- the database enforces the limits too --------------------------------------------------------


@pytest.mark.postgresql
def test_the_database_refuses_what_the_services_refuse(db: Engine) -> None:
    user = _user(db, "asha")
    with pytest.raises(IntegrityError):  # usernames are unique regardless of case
        with session_scope(db) as session:
            session.add(User(username="ASHA", username_key="asha"))
    with pytest.raises(IntegrityError):
        with session_scope(db) as session:
            session.add(RoleGrant(user_id=user.id or 0, role="overlord"))
    if db.dialect.name == "postgresql":  # SQLite does not enforce VARCHAR lengths
        with pytest.raises(DBAPIError):
            with session_scope(db) as session:
                session.add(User(username="a" * 65, username_key="b" * 65))
    assert _count(db, User) == 1 and _count(db, RoleGrant) == 0
