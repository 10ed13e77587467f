"""Tables (Job, JobLabel, JobTag, Sweep, EpochMetric, Checkpoint, JobEvent, RegisteredWorker) and
the body clients send (JobCreate); app.schemas holds what the API returns."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel
from sqlmodel._compat import SQLModelConfig  # the type of SQLModel.model_config; not re-exported

from app.contract import (
    EpochMetrics,
)
from app.hyperparameters import Hyperparameters, numbers_only
from app.resources import Resources
from app.security import ANONYMOUS_OWNER
from app.tags import Tags

MAX_NAME_CHARS = 200
MAX_NOTES_CHARS = 10_000
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"
MAX_IDEMPOTENCY_KEY_CHARS = 255
DEFAULT_MAX_ATTEMPTS = 3
MAX_RUNTIME_LIMIT_S = 30 * 24 * 3600
MAX_PRIORITY = 1000  # priorities run from -MAX_PRIORITY to MAX_PRIORITY


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
        Index("ix_jobs_status_queue_order", "status", "queue_order_at", "id"),
        Index("ix_jobs_sweep_status", "sweep_id", "status"),
        Index("ix_jobs_best_val_accuracy", "best_val_accuracy", "id"),
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
    # What it needs from a worker (resources), fixed at submit. device_kind is its `device`
    # hyperparameter as a column, and job_labels holds the labels again, one row each, so that a
    # claim can test both in SQL; `labels` is what the API shows.
    devices: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    device_kind: str = Field(default="auto", max_length=8, sa_column_kwargs={"server_default": "auto"})
    labels: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    # What it trained on and how it ended (app.contract's shapes, as JSON); SQL NULL until known.
    dataset_info: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True)))
    warm_start: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True)))
    cpu_threads: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True)))
    stop_reason: str | None = Field(default=None, max_length=16)  # a StopReason
    best_epoch: int | None = None
    val_metrics: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True)))
    test_metrics: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True)))
    exports: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True)))
    # How users find and order many jobs. `tags` is what the API shows; job_tags holds them again,
    # one row each, for filters. queue_order_at is created_at moved earlier by the job's priority
    # (app.queue's aging rate): claims take the smallest, so waiting raises every job alike.
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    notes: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    priority: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    queue_order_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    best_val_accuracy: float | None = None  # the best epoch's, kept as epochs are recorded
    sweep_id: str | None = Field(default=None, foreign_key="sweeps.id", max_length=32)


class JobLabel(SQLModel, table=True):
    """A label a job's worker must carry: claim() looks for one the worker lacks."""

    __tablename__ = "job_labels"

    job_id: str = Field(foreign_key="jobs.id", ondelete="CASCADE", primary_key=True)
    label: str = Field(primary_key=True, max_length=63)


class JobTag(SQLModel, table=True):
    """One of a job's tags: `GET /jobs?tag=` looks them up by tag."""

    __tablename__ = "job_tags"
    __table_args__ = (Index("ix_job_tags_tag", "tag", "job_id"),)

    job_id: str = Field(foreign_key="jobs.id", ondelete="CASCADE", primary_key=True)
    tag: str = Field(primary_key=True, max_length=64)


class Sweep(SQLModel, table=True):
    """A search over hyperparameters, expanded into ordinary jobs that carry its id."""

    __tablename__ = "sweeps"
    __table_args__ = (Index("ix_sweeps_owner_created", "owner", "created_at", "id"),)

    id: str = Field(default_factory=new_job_id, primary_key=True, max_length=32)
    owner: str = Field(default=ANONYMOUS_OWNER, max_length=64)
    name: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    method: str = Field(max_length=16)  # grid or random
    base: dict[str, Any] = Field(
        sa_column=Column(JSON, nullable=False)
    )  # the JobCreate every job starts from
    space: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # what varies, as submitted
    max_parallel: int | None = None  # at most this many of its jobs running at once
    created_at: datetime = Field(default_factory=utcnow)


class MetricBase(SQLModel, EpochMetrics):
    """One finished epoch's numbers (app.contract's fields), as stored and as shown."""

    # Rows are SQLAlchemy objects, which set their fields.
    model_config = SQLModelConfig(frozen=False)

    attempt: int


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


class WorkerBase(SQLModel):
    """A worker as it registered: where it runs and what it has."""

    id: str = Field(primary_key=True, max_length=255)  # host:pid, as jobs.worker_id names it
    host: str = Field(max_length=255)
    pid: int
    cuda_devices: int
    cpu_devices: int
    memory_bytes: int = Field(sa_type=BigInteger)
    labels: list[str] = Field(sa_column=Column(JSON, nullable=False))
    version: str = Field(max_length=64)  # trainq's package version
    started_at: datetime  # the database's clock, as every time below
    last_heartbeat_at: datetime


class RegisteredWorker(WorkerBase, table=True):
    """A running `python -m worker`, renewed by its heartbeat (app.queue.workers)."""

    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_live_until", "live_until"),)

    # The heartbeat's time plus a multiple of the worker's own lease: past it, the worker is not live.
    live_until: datetime


# --- what clients send --------------------------------------------------------


class JobCreate(BaseModel):
    """POST /jobs body."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = PydanticField(
        default=None, min_length=1, max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN
    )
    hyperparameters: Hyperparameters = PydanticField(default_factory=Hyperparameters)
    max_attempts: int = PydanticField(
        default=DEFAULT_MAX_ATTEMPTS, ge=1, le=20, description="Claims allowed before a lost job fails."
    )
    priority: int = PydanticField(
        default=0,
        ge=-MAX_PRIORITY,
        le=MAX_PRIORITY,
        description="Higher is claimed first; first in first out within a priority. A waiting job "
        "gains one level per PRIORITY_AGING_S (10 minutes), so none waits forever.",
    )
    max_runtime_seconds: float | None = PydanticField(
        default=None,
        gt=0,
        le=MAX_RUNTIME_LIMIT_S,
        allow_inf_nan=False,
        description="Training time allowed over all attempts; past it the job fails with reason timeout.",
    )

    resources: Resources = PydanticField(
        default_factory=Resources,
        description="What the job needs from a worker: device count (of its `device` kind) and labels.",
    )
    tags: Tags = PydanticField(
        default_factory=list,
        description="Labels to find the job by (GET /jobs?tag=); repeated tags are kept once, in order.",
    )

    _numbers_only = field_validator("max_attempts", "priority", "max_runtime_seconds", mode="before")(
        classmethod(numbers_only)
    )


class JobUpdate(BaseModel):
    """PATCH /jobs/{id} body: only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = PydanticField(
        default=None,
        min_length=1,
        max_length=MAX_NAME_CHARS,
        pattern=NAME_PATTERN,
        description="null clears it.",
    )
    tags: Tags | None = PydanticField(
        default=None, description="Replaces the job's tags; [] removes them all."
    )
    notes: str | None = PydanticField(
        default=None,
        max_length=MAX_NOTES_CHARS,
        pattern=r"^[^\x00]*$",
        description="Free text about the job; null clears it.",
    )
    priority: int | None = PydanticField(
        default=None,
        ge=-MAX_PRIORITY,
        le=MAX_PRIORITY,
        description="Only while the job is queued: each level counts as PRIORITY_AGING_S of waiting.",
    )

    _numbers_only = field_validator("priority", mode="before")(classmethod(numbers_only))

    @field_validator("tags", "priority")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Validators run only on values sent: an explicit null is refused, an absent field is not.
        if value is None:
            raise ValueError("must not be null: leave it out to keep it ([] removes every tag)")
        return value
