"""What clients get: the public shapes the API returns, built from the tables in app.models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pydantic import Field as PydanticField

from app.contract import (
    CpuThreads,
    DatasetInfo,
    EvaluationMetrics,
    ExportFile,
    FailureReason,
    StopReason,
    WarmStart,
)
from app.models import (
    Checkpoint,
    CheckpointBase,
    EpochMetric,
    Job,
    JobCreate,
    JobStatus,
    MetricBase,
    WorkerBase,
    utcnow,
)
from app.resources import Resources


class ErrorMessage(BaseModel):
    """The body of every error response but 422."""

    detail: str


UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "A valid API key is required (when keys are configured)."}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "No such job or checkpoint (or another owner's)."}
}
AMBIGUOUS_ID = "the job id prefix is ambiguous: several jobs start with it (the detail lists them)"


def job_lookup(conflict: str | None = None) -> dict[int | str, dict[str, Any]]:
    """The errors of a route that takes a job id, full or a prefix (app.deps.resolve_job_id): 404,
    and 409 for an ambiguous prefix or the route's own `conflict`."""
    description = (
        f"{conflict}, or {AMBIGUOUS_ID}." if conflict else f"{AMBIGUOUS_ID[0].upper()}{AMBIGUOUS_ID[1:]}."
    )
    return {**NOT_FOUND, 409: {"model": ErrorMessage, "description": description}}


JOB_LOOKUP = job_lookup()
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorMessage, "description": "The body is larger than TRAINQ_MAX_BODY_BYTES."}
}


class ErrorPublic(BaseModel):
    reason: FailureReason
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
    resources: Resources
    stop_reason: StopReason | None = PydanticField(
        description="Why training ended, once the job has: completed, early_stopping, time_limit, "
        "cancelled, nan_loss or failed."
    )
    best_epoch: int | None = PydanticField(description="The epoch with the best monitored metric so far.")
    best_val_accuracy: float | None = PydanticField(
        description="The highest val_accuracy of its epochs so far; null before its first epoch ends."
    )
    duration_seconds: float | None = PydanticField(
        description="Wall-clock time since it first started: until finished_at once it ended, until now "
        "before (waits between attempts included); null if it never started. runtime_seconds is the "
        "training time alone."
    )
    tags: list[str]
    notes: str | None
    priority: int = PydanticField(
        default=0, description="Higher is claimed first; a waiting job gains one level per 10 minutes."
    )
    sweep: str | None = PydanticField(description="The id of the sweep that made the job, if one did.")
    disk_bytes: int = PydanticField(
        description="Bytes its files take on the server: checkpoints, exports and a resume file (not logs)."
    )

    @classmethod
    def from_row(cls, job: Job, *, disk_bytes: int) -> JobSummary:
        return cls(**summary_fields(job, disk_bytes=disk_bytes))


class ExportPublic(ExportFile):
    url: str


class JobPublic(JobSummary):
    """A job with its per-epoch metrics (ordered by epoch), its checkpoints and its results."""

    metrics: list[MetricPublic]
    checkpoints: list[CheckpointPublic]
    dataset_info: DatasetInfo | None = PydanticField(
        default=None,
        description="What the job trains on: classes in index order, split sizes, skipped files.",
    )
    warm_start: WarmStart | None = PydanticField(default=None, description="What init_from loaded.")
    cpu_threads: CpuThreads | None = PydanticField(
        default=None, description="The CPU threads its training process used (its latest attempt's)."
    )
    val_metrics: EvaluationMetrics | None = PydanticField(
        default=None, description="The best epoch's model on the validation split, per class."
    )
    test_metrics: EvaluationMetrics | None = PydanticField(
        default=None, description="The best epoch's model on the test split, when the dataset has one."
    )
    exports: list[ExportPublic] = PydanticField(default_factory=list, description="Files to deploy.")
    waiting_reason: str | None = PydanticField(
        default=None,
        description="A queued job that no live worker could run, or that its sweep's max_parallel "
        "holds back: why (null otherwise, and while a capable worker is only busy).",
    )
    queue_position: int | None = PydanticField(
        default=None,
        description="A queued job's place in claim order, 1 = next: 1 + the queued jobs ahead of it "
        "that a live worker able to run it could take instead (every queued job ahead while no live "
        "worker could run it). Null when not queued.",
    )
    running_ahead: int | None = PydanticField(
        default=None,
        description="A queued job: the jobs running now on the live workers that could run it "
        "(null when not queued).",
    )

    @classmethod
    def from_rows(
        cls,
        job: Job,
        metrics: list[EpochMetric],
        checkpoints: list[Checkpoint],
        waiting_reason: str | None = None,
        queue_place: QueuePlace | None = None,
        *,
        disk_bytes: int,
    ) -> JobPublic:
        return cls(
            **summary_fields(job, disk_bytes=disk_bytes),
            metrics=[MetricPublic.model_validate(m, from_attributes=True) for m in metrics],
            checkpoints=[CheckpointPublic.from_row(c) for c in checkpoints],
            waiting_reason=waiting_reason,
            **queue_fields(queue_place),
            **result_fields(job),
        )


@dataclass(frozen=True)
class QueuePlace:
    """A queued job's place in the queue, as app.queue.position counts it."""

    position: int  # 1 = the next job its workers will claim
    running_ahead: int  # jobs running now on the live workers that could run this one


def queue_fields(place: QueuePlace | None) -> dict[str, Any]:
    """What a JobPublic adds about the job's place in the queue (None when it is not queued)."""
    return {
        "queue_position": None if place is None else place.position,
        "running_ahead": None if place is None else place.running_ahead,
    }


def result_fields(job: Job) -> dict[str, Any]:
    """What a JobPublic adds about what the job trained on and what came out, JSON-ready (the
    columns hold app.contract's shapes as JSON already)."""
    return {
        "dataset_info": job.dataset_info,
        "warm_start": job.warm_start,
        "cpu_threads": job.cpu_threads,
        "val_metrics": job.val_metrics,
        "test_metrics": job.test_metrics,
        "exports": [{**export, "url": export_url(job.id, export["name"])} for export in job.exports or []],
    }


def export_url(job_id: str, name: str) -> str:
    return f"/jobs/{job_id}/exports/{name}"


def summary_fields(job: Job, *, disk_bytes: int) -> dict[str, Any]:
    """A JobSummary's fields as a dict, which pydantic_core.to_json serializes like the model
    (`disk_bytes`: app.disk_usage's figure, computed for a page of jobs at once)."""
    duration = None
    if job.started_at is not None:
        # Never negative: on PostgreSQL started_at is the database's clock, and this is the API's.
        duration = max(0.0, ((job.finished_at or utcnow()) - job.started_at).total_seconds())
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
        "resources": {"devices": job.devices, "labels": job.labels},
        "stop_reason": job.stop_reason,
        "best_epoch": job.best_epoch,
        "best_val_accuracy": job.best_val_accuracy,
        "duration_seconds": duration,
        "tags": job.tags,
        "notes": job.notes,
        "priority": job.priority,
        "sweep": job.sweep_id,
        "disk_bytes": disk_bytes,
    }


class JobPage(BaseModel):
    items: list[JobSummary]
    next_cursor: str | None


class WorkerPublic(WorkerBase):
    """GET /workers: a live worker, how many live workers share its host, and its running job."""

    workers_on_host: int
    job_id: str | None


class DryRunPublic(JobCreate):
    """POST /jobs?dry_run=true: the request as it would be queued, every default filled in."""


class SweepJobPublic(BaseModel):
    """One job of a sweep, as GET /sweeps/{id} ranks them."""

    id: str
    name: str | None
    status: JobStatus
    best_val_accuracy: float | None = PydanticField(
        description="Its best epoch's validation accuracy so far."
    )
    current_epoch: int
    parameters: dict[str, Any] = PydanticField(
        description="The hyperparameters the sweep varies, as this job has them."
    )


class SweepSummary(BaseModel):
    """A sweep without its jobs (what GET /sweeps lists)."""

    id: str
    name: str | None
    owner: str
    method: str
    base: dict[str, Any] = PydanticField(description="The POST /jobs body every job started from.")
    space: dict[str, Any] = PydanticField(
        description="parameters as submitted; random: trials and the seed used."
    )
    max_parallel: int | None
    created_at: datetime
    varied: list[str] = PydanticField(description="The hyperparameters that vary from job to job.")
    counts: dict[JobStatus, int] = PydanticField(description="Its jobs by status (every status, 0 included).")
    best_val_accuracy: float | None = PydanticField(description="Its best job's, so far.")


class SweepPublic(SweepSummary):
    """A sweep with its jobs, best first (by best_val_accuracy; jobs without one last)."""

    jobs: list[SweepJobPublic]


class SweepPage(BaseModel):
    items: list[SweepSummary]
    next_cursor: str | None
