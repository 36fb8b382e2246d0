"""Settings from ``SABHA_*`` environment variables, with one-machine defaults."""

from __future__ import annotations

import os
import re
import secrets
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from flask import Flask

# The constant key of earlier releases: published, so it signs nothing any more.
DEFAULT_SECRET_KEY = "dev-only-not-secret"
MAKE_SECRET_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'
# Where a data dir keeps the secret key made for it when SABHA_SECRET_KEY is unset.
SECRET_KEY_FILE = "secret_key"
MIN_SECRET_KEY_CHARS = 32
# Where a Flask app keeps its settings (``init_app``, ``current_settings``).
_APP_KEY = "sabha.settings"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sabha"


class OidcProvider(BaseModel):
    """One OpenID Connect identity provider people may sign in with.

    ``issuer`` is the issuer URL; its discovery document is
    ``<issuer>/.well-known/openid-configuration``.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")
    title: str = Field(min_length=1, max_length=100)
    issuer: str
    client_id: str = Field(min_length=1)
    client_secret: str = ""
    scopes: str = "openid email profile"

    @field_validator("issuer")
    @classmethod
    def _issuer_is_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/?#]+", value):
            raise ValueError(f"issuer must be a URL like https://id.example.org, not {value!r}")
        return value.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, value: str) -> str:
        if "openid" not in value.split():
            raise ValueError(f"scopes must include 'openid', got {value!r}")
        return value

    @property
    def discovery_url(self) -> str:
        """Where the provider's OpenID configuration is published."""
        return f"{self.issuer}/.well-known/openid-configuration"


class Settings(BaseSettings):
    """Everything Sabha can be configured with.

    Every field reads the environment variable ``SABHA_<FIELD>``; for example
    ``SABHA_DATABASE_URL=postgresql+psycopg://user@host/db``.
    """

    model_config = SettingsConfigDict(env_prefix="SABHA_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    artifacts_dir: Path | None = None
    models_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 5000
    ray_address: str | None = None
    eval_batch_size: int | None = Field(default=None, ge=1)
    lease_seconds: int = Field(default=300, ge=5, le=86_400)
    # The most shards one batch lease request gets (POST /api/v1/leases/batch).
    lease_max_shards: int = Field(default=64, ge=1, le=1000)
    # Batch lease requests one web process holds while they wait for work (long-poll);
    # each holds a thread (SABHA_THREADS, 4 by default), so keep it below the thread count.
    # Beyond it a request is answered at once with no shards and Retry-After. 0: no waiting.
    # Unset: half the process's threads (``lease_waiter_places``).
    lease_waiters: int | None = Field(default=None, ge=0, le=1000)
    shard_size: int = Field(default=64, ge=1, le=10_000)
    vllm_memory_fraction: float | None = Field(default=None, gt=0.0, le=1.0)
    # Signs session cookies and keys the secret draws of verification. Unset: a random key
    # made once per data dir (SECRET_KEY_FILE), shared by every process on it; production
    # needs it set (check_production).
    secret_key: str | None = None
    # Lifetime of the access tokens volunteer pools get for their client credentials.
    worker_token_seconds: int = Field(default=900, ge=60, le=86_400)
    # The longest a personal access token may live.
    token_max_days: int = Field(default=366, ge=1, le=3660)
    # The most characters any text field of a benchmark item may have.
    max_field_chars: int = Field(default=20_000, ge=1)
    # Verified results (docs/verification.md): a volunteer pool's results all wait for
    # another owner's replica until this many of them were verified; afterwards this
    # share of its results is replicated, and one shard of it in every job it works on.
    replication_new_pool_shards: int = Field(default=20, ge=0)
    replication_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    # Before a job is scored, one shard of each proven pool in it is verified. Off (like a
    # fraction of 0) only where every pool is the operator's own: a proven pool's word alone
    # then publishes a job.
    replication_audit_jobs: bool = True
    # Two runs of a shard that are not identical agree when this share of items have
    # chrF similarity >= replica_item_chrf and their shard chrF against the references
    # differs by at most replica_score_delta points (docs/verification.md).
    replica_item_chrf: float = Field(default=50.0, ge=0.0, le=100.0)
    replica_item_share: float = Field(default=0.6, ge=0.0, le=1.0)
    replica_score_delta: float = Field(default=5.0, ge=0.0, le=100.0)
    # The largest shard result (request body) a pool may post, in bytes.
    max_result_bytes: int = Field(default=16_000_000, ge=1_000)
    # The most shard results one post may carry (POST /api/v1/results/batch); the whole
    # body is held to max_result_bytes.
    max_results_per_post: int = Field(default=32, ge=1, le=1_000)
    # The largest body of any other request, in bytes (larger ones get 413 before parsing).
    max_request_bytes: int = Field(default=1_000_000, ge=1_000)
    # Memory of the local pool's largest accelerator in GB (10^9 bytes); unset: this
    # machine's largest GPU (nvidia-smi), else its RAM; 0: no local pool.
    local_pool_memory_gb: float | None = Field(default=None, ge=0)
    # Whether submissions may name a model folder on the server (self-hosted only).
    allow_local_models: bool = False
    # Whether volunteer pools may be leased jobs whose model is a folder on the
    # platform's disk: only where they share that disk (one machine, tests).
    local_models_for_volunteers: bool = False
    # Submissions one user may make in 24 hours (platform faults do not count).
    submissions_per_day: int = Field(default=10, ge=0)
    # Label Studio: an existing server (URL and an API token), else the one
    # `sabha labelstudio start` runs from `label_studio_venv` on 127.0.0.1.
    label_studio_url: str | None = None
    label_studio_token: str | None = None
    label_studio_webhook_secret: str | None = None
    label_studio_port: int = Field(default=8080, ge=1, le=65_535)
    label_studio_venv: Path | None = None
    label_studio_data_dir: Path | None = None
    # The private Label Studio: items of the private held-out split are annotated
    # only there, by trusted annotators (docs: README "Private items"). An existing
    # server (URL and token), else the one `sabha labelstudio start --private` runs.
    label_studio_private_url: str | None = None
    label_studio_private_token: str | None = None
    label_studio_private_port: int = Field(default=8081, ge=1, le=65_535)
    label_studio_private_data_dir: Path | None = None

    # -- the web app: accounts, sessions, rate limits (see README "Run Sabha for your community")
    env: Literal["development", "production"] = "development"
    # The public https URL of the site (e.g. https://sabha.example.org): OIDC redirect URIs
    # are built from it, so they stay right behind a reverse proxy.
    public_url: str | None = None
    # JSON list of OpenID Connect providers, see OidcProvider.
    oidc_providers: list[OidcProvider] = Field(default_factory=list)
    # A sign-in ends after this many hours without use, and after session_max_hours however
    # it is used; signing out and a password change end it at once (server-side sessions).
    session_hours: int = Field(default=24, ge=1, le=24 * 90)
    session_max_hours: int = Field(default=24 * 14, ge=1, le=24 * 366)
    # How many reverse proxies in front of Sabha may set X-Forwarded-* (0: trust none).
    trusted_proxies: int = Field(default=0, ge=0, le=5)
    redis_url: str | None = None
    rate_limits: bool = True
    rate_limit_default: str = "600 per minute"
    rate_limit_login: str = "10 per minute; 100 per day"
    rate_limit_write: str = "60 per minute; 1000 per day"
    # Per client address, at /oauth/token and /oauth/revoke (each checks a secret with Argon2).
    rate_limit_oauth: str = "30 per minute; 2000 per day"
    # Per pool token, for the lease protocol (lease, heartbeat, result, release).
    rate_limit_worker: str = "1200 per minute"
    rate_limit_prefix: str = "sabha"
    # How passwords and pool secrets are hashed: Argon2id with RFC 9106's low-memory
    # profile, or (test suites only; refused in production) Argon2id at its cheapest.
    password_hashing: Literal["argon2id", "fast-insecure-for-tests"] = "argon2id"

    @field_validator(
        "secret_key",
        "database_url",
        "redis_url",
        "public_url",
        "label_studio_url",
        "label_studio_token",
        "label_studio_webhook_secret",
        "label_studio_private_url",
        "label_studio_private_token",
    )
    @classmethod
    def _empty_url_means_default(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("public_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query:
            raise ValueError(
                f"SABHA_PUBLIC_URL must be the site's address like https://sabha.example.org, "
                f"not {value!r}"
            )
        return value.rstrip("/")

    @field_validator(
        "rate_limit_default",
        "rate_limit_login",
        "rate_limit_write",
        "rate_limit_oauth",
        "rate_limit_worker",
    )
    @classmethod
    def _rate_limit_syntax(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not a rate limit; write it like '10 per minute; 100 per day'"
            ) from exc
        return value

    def check_production(self) -> None:
        """Refuse settings that are unsafe on a public server (``SABHA_ENV=production``).

        Raises:
            SettingsError: the secret key is unset, the old published default or too short,
                or the public URL is not https.
        """
        from .errors import SettingsError

        if self.env != "production":
            return
        key = self.secret_key
        if key is None or key == DEFAULT_SECRET_KEY or len(key) < MIN_SECRET_KEY_CHARS:
            if key is None:
                reason = "is not set"
            elif key == DEFAULT_SECRET_KEY:
                reason = "is the default of earlier releases, which is published"
            else:
                reason = "is too short"
            raise SettingsError(
                f"SABHA_SECRET_KEY {reason}: in production (SABHA_ENV=production) it must be "
                f"a random secret of at least {MIN_SECRET_KEY_CHARS} characters, since it signs "
                "the session cookies, the same on every machine that serves this site.",
                f"Make one with {MAKE_SECRET_KEY} and set SABHA_SECRET_KEY to it "
                "(keep it out of version control).",
            )
        if self.password_hashing != "argon2id":
            raise SettingsError(
                f"SABHA_PASSWORD_HASHING is {self.password_hashing!r}, which only test suites "
                "may use: its hashes take microseconds to guess.",
                "Unset SABHA_PASSWORD_HASHING (the default is argon2id).",
            )
        if self.public_url and not self.public_url.startswith("https://"):
            raise SettingsError(
                f"SABHA_PUBLIC_URL is {self.public_url!r}, but in production it must be https.",
                "Set SABHA_PUBLIC_URL to the https address people reach Sabha at.",
            )

    @property
    def resolved_secret_key(self) -> str:
        """``SABHA_SECRET_KEY``, else the data dir's own random key (made on first use).

        Every process on one data dir (gunicorn workers, the CLI) reads the same
        file, ``<data dir>/secret_key`` (mode 0600), so they sign and check alike.

        Raises:
            SettingsError: the key file is readable by others or damaged.
        """
        if self.secret_key is not None:
            return self.secret_key
        return _data_dir_secret_key(self.data_dir)

    @property
    def resolved_database_url(self) -> str:
        """The database URL: ``SABHA_DATABASE_URL``, else SQLite under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'sabha.db'}"

    @property
    def resolved_artifacts_dir(self) -> Path:
        """Where released dataset versions (Parquet) are written."""
        return self.artifacts_dir or self.data_dir / "artifacts"

    @property
    def resolved_label_studio_data_dir(self) -> Path:
        """The data dir of the Label Studio server Sabha runs (its database and media)."""
        return self.label_studio_data_dir or self.data_dir / "labelstudio"

    @property
    def resolved_label_studio_private_data_dir(self) -> Path:
        """The data dir of the private Label Studio server Sabha runs."""
        return self.label_studio_private_data_dir or self.data_dir / "labelstudio-private"

    @property
    def resolved_models_dir(self) -> Path:
        """Where ``sabha models make-tiny`` writes model directories."""
        return self.models_dir or self.data_dir / "models"

    def ensure_dirs(self) -> None:
        """Create the data, artifacts and models folders if missing."""
        for path in (self.data_dir, self.resolved_artifacts_dir, self.resolved_models_dir):
            path.mkdir(parents=True, exist_ok=True)


def _data_dir_secret_key(folder: Path) -> str:
    """The secret key of the data dir ``folder``, made once: random, mode 0600, whole.

    The key is written to a private temporary file and hard-linked into place,
    which fails when another process linked its key first; then that one is
    read, so processes starting at once all end up with the same key.
    """
    path = folder / SECRET_KEY_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{SECRET_KEY_FILE}.")
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:  # mkstemp: mode 0600
                handle.write(secrets.token_urlsafe(48) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            os.unlink(temporary)
    return _read_secret_key(path)


def _read_secret_key(path: Path) -> str:
    from .errors import SettingsError

    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SettingsError(
            f"The secret key file {path} can be read by other users (mode {stat.filemode(mode)}).",
            f"Run `chmod 600 {path}`, or set SABHA_SECRET_KEY.",
        )
    key = path.read_text(encoding="ascii", errors="replace").strip()
    if len(key) < MIN_SECRET_KEY_CHARS:
        raise SettingsError(
            f"The secret key file {path} is damaged: it holds {len(key)} characters, "
            f"not at least {MIN_SECRET_KEY_CHARS}.",
            "Delete it and Sabha makes a new one (everyone signed in is signed out), "
            "or set SABHA_SECRET_KEY.",
        )
    return key


def init_app(app: Flask, settings: Settings) -> None:
    """Make ``settings`` the Flask app's: ``current_settings()`` returns them."""
    app.extensions[_APP_KEY] = settings


def current_settings(app: Flask | None = None) -> Settings:
    """The settings of ``app``, or of the current Flask app when none is given."""
    from flask import current_app

    settings: Settings = (app or current_app).extensions[_APP_KEY]
    return settings


def lease_waiter_places(settings: Settings) -> int:
    """Batch lease requests one web process may hold while they wait for work.

    ``SABHA_LEASE_WAITERS`` when set, else half the process's threads
    (``SABHA_THREADS`` as ``infra/gunicorn.conf.py`` reads it, 4 by default), at
    least one: the other half stays free for every other request.
    """
    if settings.lease_waiters is not None:
        return settings.lease_waiters
    try:
        threads = int(os.environ.get("SABHA_THREADS", "4"))
    except ValueError:
        threads = 4
    return max(1, threads // 2)
