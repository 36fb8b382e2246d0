"""Settings from ``SABHA_*`` environment variables, with one-machine defaults."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sabha"


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
    eval_batch_size: int = Field(default=64, ge=1)
    vllm_memory_fraction: float | None = Field(default=None, gt=0.0, le=1.0)
    secret_key: str = "dev-only-not-secret"

    @field_validator("database_url")
    @classmethod
    def _empty_url_means_default(cls, value: str | None) -> str | None:
        return value or None

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
    def resolved_models_dir(self) -> Path:
        """Where ``sabha models make-tiny`` writes model directories."""
        return self.models_dir or self.data_dir / "models"

    def ensure_dirs(self) -> None:
        """Create the data, artifacts and models folders if missing."""
        for path in (self.data_dir, self.resolved_artifacts_dir, self.resolved_models_dir):
            path.mkdir(parents=True, exist_ok=True)
