"""Settings shared by the API and the worker, read from TRAINQ_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.resources import DeviceCounts, parse_device_counts, parse_labels
from app.security import parse_api_keys

DEFAULT_STATE_DIR = Path("var")
# A worker renews its lease every quarter of it and looks at its training process every 0.2 s:
# below this, a healthy worker loses its jobs to one slow write.
MIN_LEASE_SECONDS = 2.0


class Settings(BaseSettings):
    """Validated once at start-up; a bad value stops the process with a clear message."""

    model_config = SettingsConfigDict(env_prefix="TRAINQ_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_STATE_DIR / 'trainq.db'}",
        description="SQLAlchemy URL; SQLite files are created with their folder.",
    )
    artifacts_dir: Path = Field(
        default=DEFAULT_STATE_DIR / "artifacts", description="Checkpoints and training logs."
    )
    data_dir: Path = Field(default=DEFAULT_STATE_DIR / "data", description="Datasets.")
    lease_seconds: float = Field(
        default=60.0,
        description=f"How long a claim holds without a heartbeat (at least {MIN_LEASE_SECONDS:g}).",
    )
    poll_interval_seconds: float = Field(
        default=0.1, gt=0, le=60, description="How often an idle worker looks for a job (a read-only query)."
    )
    api_keys: SecretStr | None = Field(default=None, description="Comma-separated owner:key pairs.")
    api_keys_file: Path | None = Field(default=None, description="A file of owner:key lines.")
    allow_anonymous: bool = Field(
        default=False, description="Answer requests from other machines without API keys."
    )
    api_url: str | None = Field(
        default=None,
        description="Worker on another host: the API's URL; checkpoints and logs are uploaded to it.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="Worker on another host: a key of the reserved owner 'worker'."
    )
    # NoDecode: comma-separated text, not the JSON that pydantic-settings expects of other types.
    worker_labels: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(), description="Worker: comma-separated labels it carries (jobs may require them)."
    )
    worker_devices: Annotated[DeviceCounts, NoDecode] = Field(
        default=DeviceCounts(),
        description="Worker: device counts that replace detection, e.g. cuda:4 or cpu:16 or cuda:4,cpu:16.",
    )
    cpu_threads: int | None = Field(
        default=None,
        description="Worker: CPU threads each training process (each rank) uses; unset: the CPUs this "
        "worker may run on, shared among the live workers on its host and the job's ranks.",
    )
    retention_days: float | None = Field(
        default=None,
        gt=0,
        description="Remove the checkpoints (and resume files) of jobs that ended more than this many days "
        "ago, keeping the job, its metrics and its exports; unset: keep them until the job is deleted.",
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_log_bytes: int = Field(
        default=5 * 1024 * 1024,
        ge=4096,
        description="Training log kept per attempt; later lines are dropped.",
    )
    accel_redirect_prefix: str | None = Field(
        default=None,
        description="Behind nginx: answer checkpoint and export downloads with an empty response whose "
        "X-Accel-Redirect header is this prefix + the file's path under TRAINQ_ARTIFACTS_DIR, for an "
        "internal location of nginx to send (deploy/nginx.conf); unset: the API sends the file itself.",
    )

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme, separator, rest = value.partition("://")
        if scheme == "sqlite" and separator:
            return value
        # psycopg (3) is the driver trainq installs; SQLAlchemy's default for postgresql:// is psycopg2.
        if scheme in {"postgresql", "postgres", "postgresql+psycopg"} and separator:
            return f"postgresql+psycopg://{rest}"
        raise ValueError(
            "must be sqlite:///<file> or postgresql+psycopg://<user>:<password>@<host>:<port>/<database>"
        )

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("TRAINQ_API_URL must start with http:// or https://, e.g. http://api-host:8000")
        return value.rstrip("/")

    @field_validator("worker_labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        return parse_labels(value) if isinstance(value, str) else value

    @field_validator("worker_devices", mode="before")
    @classmethod
    def _devices(cls, value: Any) -> Any:
        return parse_device_counts(value) if isinstance(value, str) else value

    @field_validator("accel_redirect_prefix")
    @classmethod
    def _location_prefix(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not (value.startswith("/") and value.endswith("/")) or any(
            c in "?#\\" or c.isspace() or not c.isprintable() for c in value
        ):
            raise ValueError(
                "TRAINQ_ACCEL_REDIRECT_PREFIX must be an nginx location path that starts and ends with /, "
                "without spaces, ? or #, e.g. /_artifacts/"
            )
        return value

    @field_validator("cpu_threads", mode="before")
    @classmethod
    def _positive_threads(cls, value: Any) -> Any:
        # Before pydantic's int parsing, so that "two" and "0" get the same message.
        if value is None or value == "":
            return None
        threads = 0
        if isinstance(value, int) and not isinstance(value, bool):
            threads = value
        elif isinstance(value, str) and value.strip().isdecimal():
            threads = int(value)
        if threads < 1:
            raise ValueError(
                f"must be a whole number of threads, at least 1 (got {value!r}); "
                "leave it unset to share the worker's CPUs among the workers on its host"
            )
        return threads

    @field_validator("lease_seconds")
    @classmethod
    def _long_enough_lease(cls, value: float) -> float:
        if not value >= MIN_LEASE_SECONDS:
            raise ValueError(
                f"TRAINQ_LEASE_SECONDS must be at least {MIN_LEASE_SECONDS:g} seconds: a worker renews its "
                "lease every quarter of it, so a shorter one is lost by healthy workers (60, the default, "
                "suits most machines; a few seconds only makes sense in tests)"
            )
        return value

    @model_validator(mode="after")
    def _keys_parse(self) -> Settings:
        self.api_key_owners()
        return self

    def api_key_owners(self) -> dict[str, str]:
        """{key: owner} from TRAINQ_API_KEYS and TRAINQ_API_KEYS_FILE; empty when none are set."""
        keys = parse_api_keys(self.api_keys.get_secret_value()) if self.api_keys else {}
        if self.api_keys_file is not None:
            try:
                text = self.api_keys_file.read_text()
            except OSError as exc:
                raise ValueError(f"TRAINQ_API_KEYS_FILE {self.api_keys_file} cannot be read: {exc}") from exc
            for key, owner in parse_api_keys(text).items():
                if keys.setdefault(key, owner) != owner:
                    raise ValueError(f"the key of owner {owner!r} is also given to {keys[key]!r}")
        return keys


@lru_cache
def get_settings() -> Settings:
    return Settings()
