"""accounts: users, identities, roles, tokens, pool credentials, submissions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Adds the account tables (users, their external identities and role grants),
personal access tokens, pool credentials and their worker tokens,
submissions and the jobs they own, and an optional owner for each pool.
Existing rows are untouched: existing pools (``local``) have no owner.

There is no downgrade: restore the backup taken before upgrading.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_WHEN = sa.DateTime(timezone=True)
_ROLES = ["annotator", "reviewer", "maintainer", "submitter", "volunteer", "admin"]
_SUBMISSION_STATUSES = ["queued", "running", "completed", "failed", "cancelled"]


def _check(values: Sequence[str], column: str) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "user_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", _S(length=64), nullable=False),
        sa.Column("username_key", _S(length=256), nullable=False),
        sa.Column("display_name", _S(length=200), nullable=True),
        sa.Column("email", _S(length=320), nullable=True),
        sa.Column("password_hash", _S(length=200), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("last_login_at", _WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_user_account_username_key", "user_account", ["username_key"], unique=True)

    op.create_table(
        "user_identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("issuer", _S(length=500), nullable=False),
        sa.Column("subject", _S(length=255), nullable=False),
        sa.Column("email", _S(length=320), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer", "subject", name="uq_identity_issuer_subject"),
    )
    op.create_index("ix_user_identity_user_id", "user_identity", ["user_id"])

    op.create_table(
        "role_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", _S(length=20), nullable=False),
        sa.Column("granted_by_id", sa.Integer(), nullable=True),
        sa.Column("granted_at", _WHEN, nullable=False),
        sa.CheckConstraint(_check(_ROLES, "role"), name="ck_role_grant_role"),
        sa.ForeignKeyConstraint(["granted_by_id"], ["user_account.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "role", name="uq_role_grant_user_role"),
    )
    op.create_index("ix_role_grant_user_id", "role_grant", ["user_id"])

    op.create_table(
        "access_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", _S(length=100), nullable=False),
        sa.Column("lookup", _S(length=32), nullable=False),
        sa.Column("token_hash", _S(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.Column("last_used_at", _WHEN, nullable=True),
        sa.Column("revoked_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_access_token_lookup", "access_token", ["lookup"], unique=True)
    op.create_index("ix_access_token_user_id", "access_token", ["user_id"])

    op.create_table(
        "pool_credential",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", _S(length=100), nullable=False),
        sa.Column("client_id", _S(length=64), nullable=False),
        sa.Column("secret_hash", _S(length=200), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("revoked_at", _WHEN, nullable=True),
        sa.Column("last_used_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_pool_credential_client_id", "pool_credential", ["client_id"], unique=True)
    op.create_index("ix_pool_credential_owner_id", "pool_credential", ["owner_id"])

    op.create_table(
        "worker_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.Integer(), nullable=False),
        sa.Column("lookup", _S(length=32), nullable=False),
        sa.Column("token_hash", _S(length=64), nullable=False),
        sa.Column("scope", _S(length=100), nullable=False),
        sa.Column("issued_at", _WHEN, nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.Column("revoked_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(["credential_id"], ["pool_credential.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_worker_token_lookup", "worker_token", ["lookup"], unique=True)
    op.create_index("ix_worker_token_credential_id", "worker_token", ["credential_id"])
    op.create_index("ix_worker_token_expires_at", "worker_token", ["expires_at"])

    op.create_table(
        "submission",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("status", _S(length=20), nullable=False),
        sa.Column("license", _S(length=50), nullable=False),
        sa.Column("benchmarks", sa.JSON(), nullable=False),
        sa.Column("decoding", sa.JSON(), nullable=False),
        sa.Column("estimate_bytes", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("counts_against_quota", sa.Boolean(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("finished_at", _WHEN, nullable=True),
        sa.CheckConstraint(_check(_SUBMISSION_STATUSES, "status"), name="ck_submission_status"),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_submission_user_id", "submission", ["user_id"])
    op.create_index("ix_submission_model_id", "submission", ["model_id"])
    op.create_index("ix_submission_status", "submission", ["status"])

    op.create_table(
        "submission_job",
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.ForeignKeyConstraint(["submission_id"], ["submission.id"]),
        sa.PrimaryKeyConstraint("submission_id", "job_id"),
    )
    op.create_index("ix_submission_job_job_id", "submission_job", ["job_id"])

    with op.batch_alter_table("pool") as batch:
        batch.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_pool_owner", "user_account", ["owner_id"], ["id"])
        batch.create_index("ix_pool_owner_id", ["owner_id"])


def downgrade() -> None:
    raise NotImplementedError(
        "Revision 0003 has no downgrade: restore the database backup taken before upgrading."
    )
