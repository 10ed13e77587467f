"""A job as GET /jobs/{id} shows it: its summary, metric rows, checkpoints, place in the queue and
results, read in one session. Routes that answer with a job (get, cancel, edit) build it here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from app import disk_usage, queue
from app.models import Checkpoint, EpochMetric, Job
from app.schemas import CheckpointPublic, JobPublic, MetricPublic, queue_fields, result_fields, summary_fields

METRIC_FIELDS = list(MetricPublic.model_fields)


def metric_rows(session: Session, job_id: str, *, after_epoch: int = 0) -> list[dict[str, Any]]:
    """MetricPublic's fields of the job's epochs after `after_epoch`, in order: straight from
    tuples, without an ORM or pydantic object per row."""
    rows = session.exec(
        select(*(col(getattr(EpochMetric, name)) for name in METRIC_FIELDS))
        .where(EpochMetric.job_id == job_id, col(EpochMetric.epoch) > after_epoch)
        .order_by(col(EpochMetric.epoch))
    ).all()
    return [dict(zip(METRIC_FIELDS, row, strict=True)) for row in rows]


def public_dict(session: Session, job: Job, artifacts_dir: Path) -> dict[str, Any]:
    """A JobPublic's fields, JSON-ready."""
    body = summary_fields(
        job, disk_bytes=disk_usage.disk_bytes(session, [job], artifacts_dir=artifacts_dir)[job.id]
    )
    body["metrics"] = metric_rows(session, job.id)
    checkpoints = session.exec(
        select(Checkpoint).where(Checkpoint.job_id == job.id).order_by(col(Checkpoint.epoch))
    )
    body["checkpoints"] = [CheckpointPublic.from_row(c).model_dump(mode="json") for c in checkpoints]
    body["waiting_reason"] = queue.waiting_reason(session, job=job)
    body.update(queue_fields(queue.queue_place(session, job=job)))
    body.update(result_fields(job))
    return body


def public(session: Session, job: Job, artifacts_dir: Path) -> JobPublic:
    return JobPublic.model_validate(public_dict(session, job, artifacts_dir))
