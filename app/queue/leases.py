"""Claims and leases: a worker's hold on a running job, and how every attempt ends.

A worker's writes are fenced by its Lease (job id + the attempt it claimed,
while the job is running): once the job was taken back, cancelled or ended
elsewhere, every fenced write is refused and returns False. Every claimed job
ends through succeed() or fail(); release() hands it back unfinished.

PostgreSQL runs these at READ COMMITTED, where two writers can both read a job and
both act on what they read. So each write is one conditional UPDATE (which re-reads a
row a concurrent writer changed before it applies), or locks the job's row before
reading it (SELECT ... FOR UPDATE). SQLite's BEGIN IMMEDIATE serialises writers anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, case, cast, func, null, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app.db import read_session, write_session
from app.models import Checkpoint, Job, JobStatus

from . import events, wakeup
from .clock import database_now

logger = logging.getLogger(__name__)

# Failures of the machine rather than of the job: the job is queued again until
# max_attempts is used up. Everything else (bad config, bad data, NaN loss, a
# crash in training code, the time limit) would fail the same way again. A worker on another
# host that cannot reach the API (api_unreachable) or whose key it refuses (api_refused, once
# the worker's start-up check passed) is the machine's failure too.
RETRYABLE_REASONS = frozenset({"worker_lost", "out_of_memory", "disk_full", "api_unreachable", "api_refused"})


@dataclass(frozen=True)
class Lease:
    """What a worker holds while it runs a job: every write it makes is fenced by it."""

    job_id: str
    attempt: int
    hyperparameters: dict[str, Any]
    resume_file: str | None  # where to continue from, when an earlier attempt left a checkpoint
    resume_sha256: str | None  # resume_file's digest, when known (for a worker that downloads it)
    listed_files: frozenset[str]  # every file the job's rows name (checkpoints, resume_file) at the claim
    runtime_seconds: float  # training time spent by earlier attempts
    max_runtime_seconds: float | None


def has_queued(engine: Engine) -> bool:
    """Whether any job waits: a read that takes no lock, for idle workers to poll often."""
    with read_session(engine) as session:
        return session.exec(select(Job.id).where(Job.status == JobStatus.queued).limit(1)).first() is not None


def claim(engine: Engine, *, worker_id: str, lease_seconds: float) -> Lease | None:
    """Take the oldest queued job, or return None when the queue is empty. One statement, served
    by the (status, created_at, id) index; on PostgreSQL concurrent claimers skip each other's
    locked rows instead of waiting for them (SQLite drops FOR UPDATE: it has one writer)."""
    queued = aliased(Job)
    oldest = (
        select(queued.id)
        .where(queued.status == JobStatus.queued)
        .order_by(col(queued.created_at), col(queued.id))
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    with write_session(engine) as session:
        claimed = session.execute(
            update(Job)
            .where(col(Job.id) == oldest)
            .values(
                status=JobStatus.running,
                attempts=col(Job.attempts) + 1,
                started_at=func.coalesce(col(Job.started_at), database_now(session)),
                worker_id=worker_id,
                lease_expires_at=database_now(session, plus_s=lease_seconds),
            )
            .returning(
                col(Job.id),
                col(Job.attempts),
                col(Job.hyperparameters),
                col(Job.resume_file),
                col(Job.resume_sha256),
                col(Job.runtime_seconds),
                col(Job.max_runtime_seconds),
            )
            .execution_options(synchronize_session=False)
        ).one_or_none()
        if claimed is None:
            return None
        job_id, attempt, hyperparameters, resume_file, resume_sha256, runtime_seconds, max_runtime_seconds = (
            claimed
        )
        events.status_changed(session, job_id=job_id, status=JobStatus.running, attempt=attempt)
        rows = session.exec(
            select(Checkpoint.file_name, Checkpoint.sha256)
            .where(Checkpoint.job_id == job_id)
            .order_by(col(Checkpoint.epoch))
        ).all()
        checkpoints = [name for name, _ in rows]
        if resume_file is None and rows:
            resume_file, resume_sha256 = rows[-1]
        lease = Lease(
            job_id=job_id,
            attempt=attempt,
            hyperparameters=dict(hyperparameters),
            resume_file=resume_file,
            resume_sha256=resume_sha256,
            listed_files=frozenset(checkpoints) | ({resume_file} if resume_file else set()),
            runtime_seconds=runtime_seconds,
            max_runtime_seconds=max_runtime_seconds,
        )
    logger.info("job %s claimed by %s (attempt %d)", lease.job_id, worker_id, lease.attempt)
    return lease


def requeue_expired(engine: Engine) -> int:
    """Take back running jobs whose lease ran out: queued again, or failed with
    worker_lost once max_attempts is used up. Returns how many were taken back.
    One conditional UPDATE: on PostgreSQL a reaper that finds a row another reaper has
    just taken back re-reads it, sees it no longer running and leaves it, so each
    expiry is counted once and has one worker_lost event."""
    message = "the worker running this job stopped renewing its lease (it crashed, was killed or lost its connection)"
    with read_session(engine) as session:
        expired = (col(Job.status) == JobStatus.running, col(Job.lease_expires_at) < database_now(session))
        if session.exec(select(Job.id).where(*expired).limit(1)).first() is None:
            return 0  # the usual case, answered without taking the write lock
    used_up = col(Job.failures) + 1 >= col(Job.max_attempts)
    with write_session(engine) as session:
        now = database_now(session)
        taken_back = session.execute(
            update(Job)
            .where(col(Job.status) == JobStatus.running, col(Job.lease_expires_at) < now)
            .values(
                failures=col(Job.failures) + 1,
                status=cast(case((used_up, JobStatus.failed), else_=JobStatus.queued), col(Job.status).type),
                finished_at=case((used_up, now), else_=null()),
                worker_id=None,
                lease_expires_at=None,
                error_reason="worker_lost",
                error_message=message,
            )
            .returning(col(Job.id), col(Job.status), col(Job.attempts))
            .execution_options(synchronize_session=False)
        ).all()
        for job_id, status, attempt in taken_back:
            events.status_changed(
                session, job_id=job_id, status=status, attempt=attempt, error=("worker_lost", message)
            )
            if status == JobStatus.queued:
                wakeup.notify_queued(session, job_id=job_id)
    failed = sum(status == JobStatus.failed for _, status, _ in taken_back)
    if taken_back:
        logger.warning(
            "took back %d jobs whose worker was lost (%d failed for good)", len(taken_back), failed
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
            lease_expires_at=database_now(session, plus_s=lease_seconds),
            runtime_seconds=runtime_seconds,
        )


def succeed(engine: Engine, *, lease: Lease, runtime_seconds: float) -> bool:
    with write_session(engine) as session:
        done = fenced_update(
            session,
            lease,
            status=JobStatus.succeeded,
            finished_at=database_now(session),
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
        job = session.exec(select(Job).where(*fence(lease)).with_for_update()).first()
        if job is None:
            return False
        job.failures += 1
        retry = reason in RETRYABLE_REASONS and job.failures < job.max_attempts
        job.status = JobStatus.queued if retry else JobStatus.failed
        job.finished_at = None if retry else database_now(session)
        job.error_reason, job.error_message = reason, message
        job.worker_id = job.lease_expires_at = None
        job.runtime_seconds = runtime_seconds
        session.add(job)
        events.status_changed(
            session, job_id=lease.job_id, status=job.status, attempt=lease.attempt, error=(reason, message)
        )
        if retry:
            wakeup.notify_queued(session, job_id=lease.job_id)
    log = "job %s: attempt %d failed (%s), queued again: %s" if retry else "job %s failed (%s): %s"
    args = (lease.job_id, lease.attempt, reason, message) if retry else (lease.job_id, reason, message)
    logger.warning(log, *args)
    return True


def release(
    engine: Engine,
    *,
    lease: Lease,
    resume_file: str | None,
    runtime_seconds: float,
    resume_sha256: str | None = None,
) -> bool:
    """Hand a job back to the queue (its worker is shutting down); not a failed attempt.
    The next claim continues from resume_file (resume_sha256: its digest, for workers
    that download it); without one (stopped before its first batch), from where this
    attempt started."""
    # Only a new mid-epoch checkpoint replaces the one this attempt may have started from.
    newer = {"resume_file": resume_file, "resume_sha256": resume_sha256} if resume_file is not None else {}
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
            wakeup.notify_queued(session, job_id=lease.job_id)
    if done:
        logger.info("job %s handed back to the queue", lease.job_id)
    return done
