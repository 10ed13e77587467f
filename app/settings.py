"""Settings shared by the API and the worker, read from TRAINQ_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STATE_DIR = Path("var")


class Settings(BaseSettings):
    """Validated once at start-up; a bad value stops the process with a clear message."""

    model_config = SettingsConfigDict(env_prefix="TRAINQ_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_STATE_DIR / 'trainq.db'}",
        description="SQLAlchemy URL; SQLite files are created with their folder.",
    )
    artifacts_dir: Path = Field(default=DEFAULT_STATE_DIR / "artifacts", description="Checkpoints.")
    data_dir: Path = Field(default=DEFAULT_STATE_DIR / "data", description="Datasets.")
    lease_seconds: float = Field(
        default=60.0, gt=0, description="How long a claim holds without a heartbeat."
    )
    poll_interval_seconds: float = Field(default=0.5, gt=0, le=60, description="Idle worker's queue poll.")

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
