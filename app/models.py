"""Tables (Job, EpochMetric, Checkpoint, JobEvent) and the public shapes the API returns."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.hyperparameters import Hyperparameters, numbers_only
from app.security import ANONYMOUS_OWNER

MAX_NAME_CHARS = 200
MAX_IDEMPOTENCY_KEY_CHARS = 255
DEFAULT_MAX_ATTEMPTS = 3
MAX_RUNTIME_LIMIT_S = 30 * 24 * 3600


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobStatus(enum.StrEnum):
    queued = "queued"  # waiting for a worker
    running = "running"  # claimed by a worker that holds a live lease
    succeeded = "succeeded"  # trained to the end or stopped early; checkpoints kept
    failed = "failed"  # ended with an error (reason and message on the job)
    cancelled = "cancelled"  # stopped on request

    @property
    def is_final(self) -> bool:
        return self in {JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled}


# --- tables -----------------------------------------------------------------


class Job(SQLModel, table=True):
    """One training run; its state changes only through app.queue."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created", "status", "created_at", "id"),
        Index("ix_jobs_created", "created_at", "id"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
        Index("ix_jobs_owner_created", "owner", "created_at", "id"),
        UniqueConstraint("owner", "idempotency_key"),
    )

    id: str = Field(default_factory=new_job_id, primary_key=True, max_length=32)
    name: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    owner: str = Field(default=ANONYMOUS_OWNER, max_length=64)
    status: JobStatus = Field(default=JobStatus.queued)
    hyperparameters: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0  # claims by a worker
    failures: int = 0  # attempts that ended in a retryable failure (a graceful hand-back is none)
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_runtime_seconds: float | None = None
    runtime_seconds: float = 0.0  # training time of all attempts so far
    current_epoch: int = 0
    progress: float = 0.0
    error_reason: str | None = None
    error_message: str | None = None
    device: str | None = None
    precision: str | None = None
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    resume_file: str | None = None  # a mid-epoch checkpoint left by a graceful hand-back
    resume_sha256: str | None = None  # resume_file's sha256, checked by a worker that downloads it
    idempotency_key: str | None = Field(default=None, max_length=MAX_IDEMPOTENCY_KEY_CHARS)
    request_hash: str | None = None


class MetricBase(SQLModel):
    """One finished epoch's numbers, as stored and as shown."""

    epoch: int
    attempt: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float
    duration_seconds: float
    samples_per_second: float


class EpochMetric(MetricBase, table=True):
    """One finished epoch of one job, written when the epoch ends."""

    __tablename__ = "epoch_metrics"
    # Ids never reused (SQLite AUTOINCREMENT): readers follow new rows by id.
    __table_args__ = (UniqueConstraint("job_id", "epoch"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)


class CheckpointBase(SQLModel):
    """What a client learns about a checkpoint file."""

    epoch: int
    size_bytes: int
    sha256: str
    is_best: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class Checkpoint(CheckpointBase, table=True):
    """A checkpoint file under TRAINQ_ARTIFACTS_DIR/<job id>/, listed only once it is complete."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "epoch"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", ondelete="CASCADE")
    file_name: str


class EventKind(enum.StrEnum):
    status = "status"  # the job changed status (queued, running, and how it ended)
    epoch = "epoch"  # an epoch finished: its metric row
    checkpoint = "checkpoint"  # a checkpoint file was listed


class JobEvent(SQLModel, table=True):
    """What happened to a job, in order: written in the same transaction as the change itself,
    so that the event stream (GET /jobs/{id}/events) can replay and resume from an id."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job", "job_id", "id"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", ondelete="CASCADE")
    kind: EventKind
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


# --- what clients send --------------------------------------------------------


class JobCreate(BaseModel):
    """POST /jobs body."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = PydanticField(
        default=None, min_length=1, max_length=MAX_NAME_CHARS, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    hyperparameters: Hyperparameters = PydanticField(default_factory=Hyperparameters)
    max_attempts: int = PydanticField(
        default=DEFAULT_MAX_ATTEMPTS, ge=1, le=20, description="Claims allowed before a lost job fails."
    )
    max_runtime_seconds: float | None = PydanticField(
        default=None,
        gt=0,
        le=MAX_RUNTIME_LIMIT_S,
        allow_inf_nan=False,
        description="Training time allowed over all attempts; past it the job fails with reason timeout.",
    )

    _numbers_only = field_validator("max_attempts", "max_runtime_seconds", mode="before")(
        classmethod(numbers_only)
    )


# --- what clients get ---------------------------------------------------------


class ErrorMessage(BaseModel):
    """The body of every error response but 422."""

    detail: str


UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "A valid API key is required (when keys are configured)."}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "No such job or checkpoint (or another owner's)."}
}
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorMessage, "description": "The body is larger than TRAINQ_MAX_BODY_BYTES."}
}


class ErrorPublic(BaseModel):
    reason: str
    message: str


class MetricPublic(MetricBase):
    """A metric row as GET /jobs/{id} and GET /jobs/{id}/metrics show it."""


class CheckpointPublic(CheckpointBase):
    url: str

    @classmethod
    def from_row(cls, row: Checkpoint) -> CheckpointPublic:
        return cls(**row.model_dump(include=set(CheckpointBase.model_fields)), url=checkpoint_url(row))


def checkpoint_url(row: Checkpoint) -> str:
    return f"/jobs/{row.job_id}/checkpoints/{row.epoch}"


class JobSummary(BaseModel):
    """A job without its metric rows and checkpoints (what GET /jobs lists)."""

    id: str
    name: str | None
    owner: str
    status: JobStatus
    hyperparameters: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    max_attempts: int
    max_runtime_seconds: float | None
    runtime_seconds: float
    current_epoch: int
    progress: float
    device: str | None
    precision: str | None
    error: ErrorPublic | None

    @classmethod
    def from_row(cls, job: Job) -> JobSummary:
        return cls(**summary_fields(job))


class JobPublic(JobSummary):
    """A job with its per-epoch metrics (ordered by epoch) and its checkpoints."""

    metrics: list[MetricPublic]
    checkpoints: list[CheckpointPublic]

    @classmethod
    def from_rows(cls, job: Job, metrics: list[EpochMetric], checkpoints: list[Checkpoint]) -> JobPublic:
        return cls(
            **summary_fields(job),
            metrics=[MetricPublic.model_validate(m, from_attributes=True) for m in metrics],
            checkpoints=[CheckpointPublic.from_row(c) for c in checkpoints],
        )


def summary_fields(job: Job) -> dict[str, Any]:
    """A JobSummary's fields as a dict, which pydantic_core.to_json serializes like the model."""
    error = None
    if job.error_reason is not None:
        error = ErrorPublic(reason=job.error_reason, message=job.error_message or "")
    return {
        "id": job.id,
        "name": job.name,
        "owner": job.owner,
        "status": job.status,
        "hyperparameters": job.hyperparameters,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "max_runtime_seconds": job.max_runtime_seconds,
        "runtime_seconds": job.runtime_seconds,
        "current_epoch": job.current_epoch,
        "progress": job.progress,
        "device": job.device,
        "precision": job.precision,
        "error": error,
    }


class JobPage(BaseModel):
    items: list[JobSummary]
    next_cursor: str | None


class DryRunPublic(JobCreate):
    """POST /jobs?dry_run=true: the request as it would be queued, every default filled in."""
