"""Accounts: users, identities, roles, sessions, tokens and pool credentials."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .columns import enum_column, json_column, status_check, when_column
from .statuses import Role

__all__ = [
    "User",
    "Identity",
    "RoleGrant",
    "WebSession",
    "AccessToken",
    "PoolCredential",
    "WorkerToken",
]


class User(SQLModel, table=True):
    """A person with an account: a local password, external identities, or both.

    ``username_key`` is the NFC, case-folded username: usernames are unique
    regardless of case. ``password_hash`` is an Argon2 hash, or None for a
    user who signs in only through an identity provider. ``profile_name`` is
    set only when the person chose a public annotator profile; otherwise
    public pages show them anonymously.
    """

    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)
    username_key: str = Field(unique=True, index=True, max_length=256)
    display_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320, repr=False)
    password_hash: str | None = Field(default=None, max_length=200, repr=False)
    is_active: bool = True
    # BCP-47 tags of the languages the person annotates in (the annotation page's filter).
    languages: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    # The name their public annotator profile shows, when they chose to have one (opt-in);
    # ``profile_name_key`` is its NFC, case-folded form, unique like ``username_key``.
    profile_name: str | None = Field(default=None, max_length=40)
    profile_name_key: str | None = Field(default=None, unique=True, index=True, max_length=160)
    created_at: datetime = when_column()
    last_login_at: datetime | None = when_column(nullable=True)


class Identity(SQLModel, table=True):
    """A user's link to an account at an external OpenID Connect provider.

    Users are found by (issuer, subject) only, never by email: an email
    address at one provider proves nothing about an account at another.
    """

    __tablename__ = "user_identity"
    __table_args__ = (sa.UniqueConstraint("issuer", "subject", name="uq_identity_issuer_subject"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    issuer: str = Field(max_length=500)
    subject: str = Field(max_length=255)
    email: str | None = Field(default=None, max_length=320)
    created_at: datetime = when_column()


class RoleGrant(SQLModel, table=True):
    """One role held by one user, and who granted it."""

    __tablename__ = "role_grant"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "role", name="uq_role_grant_user_role"),
        status_check("role", Role, "ck_role_grant_role"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    role: Role = enum_column(Role, length=20)
    granted_by_id: int | None = Field(default=None, foreign_key="user_account.id")
    granted_at: datetime = when_column()


class WebSession(SQLModel, table=True):
    """A signed-in browser: the cookie holds a random session id, the table its SHA-256.

    A session ends when its user signs out or changes password
    (``ended_at``), after ``SABHA_SESSION_HOURS`` without use
    (``last_seen_at``), and ``SABHA_SESSION_MAX_HOURS`` after ``created_at``
    however it is used. The cookie proves nothing by itself: a copy of a
    signed-out cookie names a session that has ended.
    """

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    secret_hash: str = Field(unique=True, index=True, max_length=64, repr=False)
    created_at: datetime = when_column()
    last_seen_at: datetime = when_column()
    ended_at: datetime | None = when_column(nullable=True)


class AccessToken(SQLModel, table=True):
    """A personal access token: ``sabha_pat_<lookup>_<secret>``, shown once.

    Only ``lookup`` (a public random id) and the SHA-256 of the whole token
    are stored. Tokens are long random strings, so a fast hash is enough and
    every API call stays fast.
    """

    __tablename__ = "access_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    name: str = Field(max_length=100)
    lookup: str = Field(unique=True, index=True, max_length=32)
    token_hash: str = Field(max_length=64, repr=False)
    scopes: list[str] = json_column()
    created_at: datetime = when_column()
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    last_used_at: datetime | None = when_column(nullable=True)
    revoked_at: datetime | None = when_column(nullable=True)


class PoolCredential(SQLModel, table=True):
    """An OAuth2 client of a volunteer's pool (client-credentials grant).

    The secret is stored only as an Argon2 hash: it is checked once per
    access token, so a slow hash costs nothing that matters.
    """

    __tablename__ = "pool_credential"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="user_account.id", index=True)
    name: str = Field(max_length=100)
    client_id: str = Field(unique=True, index=True, max_length=64)
    secret_hash: str = Field(max_length=200, repr=False)
    scopes: list[str] = Field(default_factory=lambda: ["worker"], sa_type=sa.JSON, nullable=False)
    created_at: datetime = when_column()
    revoked_at: datetime | None = when_column(nullable=True)
    last_used_at: datetime | None = when_column(nullable=True)


class WorkerToken(SQLModel, table=True):
    """A short-lived OAuth2 access token issued to a pool credential.

    ``sabha_wkr_<lookup>_<secret>``; only the lookup and the SHA-256 of the
    token are stored.
    """

    __tablename__ = "worker_token"
    __table_args__ = (sa.Index("ix_worker_token_expires_at", "expires_at"),)

    id: int | None = Field(default=None, primary_key=True)
    credential_id: int = Field(foreign_key="pool_credential.id", index=True)
    lookup: str = Field(unique=True, index=True, max_length=32)
    token_hash: str = Field(max_length=64, repr=False)
    scope: str = Field(max_length=100)
    issued_at: datetime = when_column()
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    revoked_at: datetime | None = when_column(nullable=True)
