"""The only place that changes a job's state in SQL.

Routes and workers both call these named operations. A worker's writes are
fenced by its Lease (job id + the attempt number it claimed): once the job was
taken back or ended by someone else, every fenced write is refused and returns
False, so a worker that lost its job can no longer change it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col, select

from app.db import write_session
from app.models import Checkpoint, EpochMetric, Job, JobCreate, JobStatus, utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lease:
    """What a worker holds while it runs a job: every write it makes is fenced by it."""

    job_id: str
    attempt: int
    hyperparameters: dict[str, Any]
    resume_file: str | None  # the latest listed checkpoint, when an earlier attempt left one


def submit(engine: Engine, *, job_in: JobCreate) -> Job:
    job = Job(name=job_in.name, hyperparameters=job_in.hyperparameters.model_dump(mode="json"))
    with write_session(engine) as session:
        session.add(job)
    logger.info("job %s queued", job.id)
    return job


def claim(engine: Engine, *, worker_id: str, lease_seconds: float) -> Lease | None:
    """Take the oldest queued job, or return None when the queue is empty."""
    with write_session(engine) as session:
        job = session.exec(
            select(Job)
            .where(Job.status == JobStatus.queued)
            .order_by(col(Job.created_at), col(Job.id))
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if job is None:
            return None
        now = utcnow()
        job.status = JobStatus.running
        job.attempts += 1
        job.started_at = job.started_at or now
        job.worker_id = worker_id
        job.lease_expires_at = now + timedelta(seconds=lease_seconds)
        session.add(job)
        latest = session.exec(
            select(Checkpoint.file_name)
            .where(Checkpoint.job_id == job.id)
            .order_by(col(Checkpoint.epoch).desc())
            .limit(1)
        ).first()
        lease = Lease(
            job_id=job.id, attempt=job.attempts, hyperparameters=dict(job.hyperparameters), resume_file=latest
        )
    logger.info("job %s claimed by %s (attempt %d)", lease.job_id, worker_id, lease.attempt)
    return lease


def _fence(lease: Lease) -> tuple[Any, ...]:
    return (
        col(Job.id) == lease.job_id,
        col(Job.attempts) == lease.attempt,
        col(Job.status) == JobStatus.running,
    )


def _fenced_update(session: Session, lease: Lease, **values: Any) -> bool:
    result = session.execute(update(Job).where(*_fence(lease)).values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _holds(session: Session, lease: Lease) -> bool:
    return session.exec(select(Job.id).where(*_fence(lease))).first() is not None


def heartbeat(engine: Engine, *, lease: Lease, lease_seconds: float) -> bool:
    with write_session(engine) as session:
        return _fenced_update(session, lease, lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))


def record_start(engine: Engine, *, lease: Lease, device: str, precision: str) -> bool:
    with write_session(engine) as session:
        return _fenced_update(session, lease, device=device, precision=precision)


def record_progress(engine: Engine, *, lease: Lease, epoch: int, progress: float) -> bool:
    with write_session(engine) as session:
        return _fenced_update(session, lease, current_epoch=epoch, progress=progress)


def record_epoch(engine: Engine, *, lease: Lease, metrics: dict[str, float], progress: float) -> bool:
    """Store one finished epoch; a resumed attempt's row replaces the lost attempt's row."""
    epoch = int(metrics["epoch"])
    with write_session(engine) as session:
        if not _fenced_update(session, lease, current_epoch=epoch, progress=progress):
            return False
        session.execute(
            delete(EpochMetric).where(
                col(EpochMetric.job_id) == lease.job_id, col(EpochMetric.epoch) == epoch
            )
        )
        session.add(EpochMetric(job_id=lease.job_id, attempt=lease.attempt, **metrics))
    return True


def record_checkpoint(
    engine: Engine, *, lease: Lease, epoch: int, file_name: str, size_bytes: int, sha256: str, is_best: bool
) -> list[str] | None:
    """List a complete checkpoint file; return the file names no longer listed (to delete),
    or None when the lease is lost. Only the latest and the best checkpoint stay listed."""
    with write_session(engine) as session:
        if not _holds(session, lease):
            return None
        rows = session.exec(select(Checkpoint).where(Checkpoint.job_id == lease.job_id)).all()
        for row in rows:
            if row.epoch == epoch:
                session.delete(row)
            elif is_best and row.is_best:
                row.is_best = False
                session.add(row)
        session.flush()
        session.add(
            Checkpoint(
                job_id=lease.job_id,
                epoch=epoch,
                file_name=file_name,
                size_bytes=size_bytes,
                sha256=sha256,
                is_best=is_best,
            )
        )
        stale = [r for r in rows if r.epoch != epoch and not r.is_best and r.epoch < epoch]
        for row in stale:
            session.delete(row)
        return [r.file_name for r in stale if r.file_name != file_name]


def succeed(engine: Engine, *, lease: Lease) -> bool:
    with write_session(engine) as session:
        done = _fenced_update(
            session,
            lease,
            status=JobStatus.succeeded,
            finished_at=utcnow(),
            progress=1.0,
            lease_expires_at=None,
        )
    if done:
        logger.info("job %s succeeded", lease.job_id)
    return done


def fail(engine: Engine, *, lease: Lease, reason: str, message: str) -> bool:
    with write_session(engine) as session:
        done = _fenced_update(
            session,
            lease,
            status=JobStatus.failed,
            finished_at=utcnow(),
            error_reason=reason,
            error_message=message,
            lease_expires_at=None,
        )
    if done:
        logger.warning("job %s failed (%s): %s", lease.job_id, reason, message)
    return done


def release(engine: Engine, *, lease: Lease) -> bool:
    """Hand a job back to the queue (the worker is shutting down); it resumes from its checkpoint."""
    with write_session(engine) as session:
        done = _fenced_update(session, lease, status=JobStatus.queued, worker_id=None, lease_expires_at=None)
    if done:
        logger.info("job %s handed back to the queue", lease.job_id)
    return done
