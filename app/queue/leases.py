"""Claims and leases: a worker's hold on a running job, and how every attempt ends.

A worker's writes are fenced by its Lease (job id + the attempt it claimed,
while the job is running): once the job was taken back, cancelled or ended
elsewhere, every fenced write is refused and returns False. Every claimed job
ends through succeed() or fail(); release() hands it back unfinished.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from app.db import read_session, write_session
from app.models import Checkpoint, Job, JobStatus, utcnow

from . import events

logger = logging.getLogger(__name__)

# Failures of the machine rather than of the job: the job is queued again until
# max_attempts is used up. Everything else (bad config, bad data, NaN loss, a
# crash in training code, the time limit) would fail the same way again.
RETRYABLE_REASONS = frozenset({"worker_lost", "out_of_memory", "disk_full"})


@dataclass(frozen=True)
class Lease:
    """What a worker holds while it runs a job: every write it makes is fenced by it."""

    job_id: str
    attempt: int
    hyperparameters: dict[str, Any]
    resume_file: str | None  # where to continue from, when an earlier attempt left a checkpoint
    listed_files: frozenset[str]  # every file the job's rows name (checkpoints, resume_file) at the claim
    runtime_seconds: float  # training time spent by earlier attempts
    max_runtime_seconds: float | None


def has_queued(engine: Engine) -> bool:
    """Whether any job waits: a read that takes no lock, for idle workers to poll often."""
    with read_session(engine) as session:
        return session.exec(select(Job.id).where(Job.status == JobStatus.queued).limit(1)).first() is not None


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
        events.status_changed(session, job_id=job.id, status=JobStatus.running, attempt=job.attempts)
        checkpoints = session.exec(
            select(Checkpoint.file_name).where(Checkpoint.job_id == job.id).order_by(col(Checkpoint.epoch))
        ).all()
        listed = frozenset(checkpoints) | ({job.resume_file} if job.resume_file else set())
        lease = Lease(
            job_id=job.id,
            attempt=job.attempts,
            hyperparameters=dict(job.hyperparameters),
            resume_file=job.resume_file or (checkpoints[-1] if checkpoints else None),
            listed_files=listed,
            runtime_seconds=job.runtime_seconds,
            max_runtime_seconds=job.max_runtime_seconds,
        )
    logger.info("job %s claimed by %s (attempt %d)", lease.job_id, worker_id, lease.attempt)
    return lease


def requeue_expired(engine: Engine) -> int:
    """Take back running jobs whose lease ran out: queued again, or failed with
    worker_lost once max_attempts is used up. Returns how many were taken back."""
    now = utcnow()
    expired = (col(Job.status) == JobStatus.running, col(Job.lease_expires_at) < now)
    message = "the worker running this job stopped renewing its lease (it crashed, was killed or lost its connection)"
    with read_session(engine) as session:
        if session.exec(select(Job.id).where(*expired).limit(1)).first() is None:
            return 0  # the usual case, answered without taking the write lock
    with write_session(engine) as session:
        taken_back = session.exec(select(Job).where(*expired)).all()
        for job in taken_back:
            job.failures += 1
            job.status = JobStatus.failed if job.failures >= job.max_attempts else JobStatus.queued
            job.finished_at = now if job.status == JobStatus.failed else None
            job.worker_id = job.lease_expires_at = None
            job.error_reason, job.error_message = "worker_lost", message
            session.add(job)
            events.status_changed(
                session,
                job_id=job.id,
                status=job.status,
                attempt=job.attempts,
                error=("worker_lost", message),
            )
    failed = sum(job.status == JobStatus.failed for job in taken_back)
    requeued = len(taken_back) - failed
    if failed or requeued:
        logger.warning(
            "took back %d jobs whose worker was lost (%d failed for good)", failed + requeued, failed
        )
    return len(taken_back)


def fence(lease: Lease) -> tuple[Any, ...]:
    return (
        col(Job.id) == lease.job_id,
        col(Job.attempts) == lease.attempt,
        col(Job.status) == JobStatus.running,
    )


def fenced_update(session: Session, lease: Lease, **values: Any) -> bool:
    result = session.execute(update(Job).where(*fence(lease)).values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def holds(engine: Engine, *, lease: Lease) -> bool:
    """Whether the lease is still current (the job was not cancelled or taken back)."""
    with read_session(engine) as session:
        return session.exec(select(Job.id).where(*fence(lease))).first() is not None


def heartbeat(engine: Engine, *, lease: Lease, lease_seconds: float, runtime_seconds: float) -> bool:
    with write_session(engine) as session:
        return fenced_update(
            session,
            lease,
            lease_expires_at=utcnow() + timedelta(seconds=lease_seconds),
            runtime_seconds=runtime_seconds,
        )


def succeed(engine: Engine, *, lease: Lease, runtime_seconds: float) -> bool:
    with write_session(engine) as session:
        done = fenced_update(
            session,
            lease,
            status=JobStatus.succeeded,
            finished_at=utcnow(),
            progress=1.0,
            lease_expires_at=None,
            runtime_seconds=runtime_seconds,
            error_reason=None,
            error_message=None,
        )
        if done:
            events.status_changed(
                session, job_id=lease.job_id, status=JobStatus.succeeded, attempt=lease.attempt
            )
    if done:
        logger.info("job %s succeeded", lease.job_id)
    return done


def fail(engine: Engine, *, lease: Lease, reason: str, message: str, runtime_seconds: float) -> bool:
    """End the attempt with an error. A retryable one queues the job again while
    attempts remain; anything else (or the last attempt) fails the job."""
    with write_session(engine) as session:
        job = session.exec(select(Job).where(*fence(lease))).first()
        if job is None:
            return False
        job.failures += 1
        retry = reason in RETRYABLE_REASONS and job.failures < job.max_attempts
        job.status = JobStatus.queued if retry else JobStatus.failed
        job.finished_at = None if retry else utcnow()
        job.error_reason, job.error_message = reason, message
        job.worker_id = job.lease_expires_at = None
        job.runtime_seconds = runtime_seconds
        session.add(job)
        events.status_changed(
            session, job_id=job.id, status=job.status, attempt=lease.attempt, error=(reason, message)
        )
    log = "job %s: attempt %d failed (%s), queued again: %s" if retry else "job %s failed (%s): %s"
    args = (lease.job_id, lease.attempt, reason, message) if retry else (lease.job_id, reason, message)
    logger.warning(log, *args)
    return True


def release(engine: Engine, *, lease: Lease, resume_file: str | None, runtime_seconds: float) -> bool:
    """Hand a job back to the queue (its worker is shutting down); not a failed attempt.
    The next claim continues from resume_file; without one (stopped before its first
    batch), from where this attempt started."""
    # Only a new mid-epoch checkpoint replaces the one this attempt may have started from.
    newer = {"resume_file": resume_file} if resume_file is not None else {}
    with write_session(engine) as session:
        done = fenced_update(
            session,
            lease,
            status=JobStatus.queued,
            worker_id=None,
            lease_expires_at=None,
            runtime_seconds=runtime_seconds,
            **newer,
        )
        if done:
            events.status_changed(
                session, job_id=lease.job_id, status=JobStatus.queued, attempt=lease.attempt
            )
    if done:
        logger.info("job %s handed back to the queue", lease.job_id)
    return done
