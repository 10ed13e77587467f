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

from pydantic import BaseModel
from sqlalchemy import Engine, case, cast, func, inspect, null, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app.contract import FailureReason, RunResults, StopReason
from app.db import read_session, write_session
from app.models import Checkpoint, Job, JobStatus
from app.resources import Capabilities, ResolvedKind

from . import outbox, wakeup
from .clock import database_now, stamp_now
from .placement import servable_by
from .sweeps import sweep_has_room, too_many_running

logger = logging.getLogger(__name__)


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
    devices: int  # how many devices (ranks) the job runs on
    device_kind: ResolvedKind  # of which kind: its `device`, with auto resolved for this worker


def has_queued(engine: Engine, *, capabilities: Capabilities) -> bool:
    """Whether a job that this worker can serve waits: a read that takes no lock, for idle workers
    to poll often (jobs it cannot serve do not count, or it would poll for them in vain)."""
    with read_session(engine) as session:
        waiting = select(Job.id).where(
            Job.status == JobStatus.queued, servable_by(capabilities), sweep_has_room()
        )
        return session.exec(waiting.limit(1)).first() is not None


CLAIM_TRIES = 5  # claims rolled back because a concurrent claimer filled the job's sweep


class _SweepIsFull(Exception):
    """The claimed job's sweep already runs max_parallel jobs: roll the claim back."""


def claim(
    engine: Engine, *, worker_id: str, lease_seconds: float, capabilities: Capabilities
) -> Lease | None:
    """claim_once, again when a concurrent claimer filled the sweep of the job it took: each try
    sees the claims committed before it, so the next one steps over that sweep."""
    for _ in range(CLAIM_TRIES):
        try:
            return claim_once(
                engine, worker_id=worker_id, lease_seconds=lease_seconds, capabilities=capabilities
            )
        except _SweepIsFull as exc:
            logger.debug("claim rolled back: sweep %s is running max_parallel jobs", exc)
    return None


def claim_once(
    engine: Engine, *, worker_id: str, lease_seconds: float, capabilities: Capabilities
) -> Lease | None:
    """Take the first queued job in claim order (app.queue.ordering: priority, then age, with
    aging) that this worker can serve (see app.queue.placement), or return None when there is
    none. One statement, served by the (status, queue_order_at, id) index and
    job_labels' primary key; on PostgreSQL concurrent claimers skip each other's locked rows
    instead of waiting for them (SQLite drops FOR UPDATE: it has one writer). Jobs this worker
    cannot serve are stepped over, so one unservable job never holds up the rest, and so are the
    jobs of a sweep that runs its max_parallel jobs already (app.queue.sweeps)."""
    queued = aliased(Job)
    first = (
        select(queued.id)
        .where(sweep_has_room(queued))
        .where(queued.status == JobStatus.queued, servable_by(capabilities, queued))
        .order_by(col(queued.queue_order_at), col(queued.id))
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    with write_session(engine) as session:
        claimed = session.execute(
            update(Job)
            .where(col(Job.id) == first)
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
                col(Job.devices),
                col(Job.device_kind),
                col(Job.sweep_id),
            )
            .execution_options(synchronize_session=False)
        ).one_or_none()
        if claimed is None:
            return None
        if claimed.sweep_id is not None and too_many_running(session, sweep_id=claimed.sweep_id):
            raise _SweepIsFull(claimed.sweep_id)
        job_id, attempt = claimed.id, claimed.attempts
        outbox.status_changed(session, job_id=job_id, status=JobStatus.running, attempt=attempt)
        rows = session.exec(
            select(Checkpoint.file_name, Checkpoint.sha256)
            .where(Checkpoint.job_id == job_id)
            .order_by(col(Checkpoint.epoch))
        ).all()
        checkpoints = [name for name, _ in rows]
        resume_file, resume_sha256 = claimed.resume_file, claimed.resume_sha256
        if resume_file is None and rows:
            resume_file, resume_sha256 = rows[-1]
        lease = Lease(
            job_id=job_id,
            attempt=attempt,
            hyperparameters=dict(claimed.hyperparameters),
            resume_file=resume_file,
            resume_sha256=resume_sha256,
            listed_files=frozenset(checkpoints) | ({resume_file} if resume_file else set()),
            runtime_seconds=claimed.runtime_seconds,
            max_runtime_seconds=claimed.max_runtime_seconds,
            devices=claimed.devices,
            device_kind=capabilities.resolve(claimed.device_kind),
        )
    logger.info(
        "job %s claimed by %s (attempt %d, %d %s)",
        job_id,
        worker_id,
        attempt,
        lease.devices,
        lease.device_kind,
    )
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
                status=cast(
                    case((used_up, JobStatus.failed), else_=JobStatus.queued),
                    inspect(Job).columns.status.type,
                ),
                finished_at=case((used_up, now), else_=null()),
                stop_reason=case((used_up, StopReason.failed.value), else_=null()),
                worker_id=None,
                lease_expires_at=None,
                error_reason=FailureReason.worker_lost,
                error_message=message,
            )
            .returning(col(Job.id), col(Job.status), col(Job.attempts))
            .execution_options(synchronize_session=False)
        ).all()
        for job_id, status, attempt in taken_back:
            outbox.status_changed(
                session,
                job_id=job_id,
                status=status,
                attempt=attempt,
                error=(FailureReason.worker_lost, message),
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


def succeed(engine: Engine, *, lease: Lease, runtime_seconds: float, results: RunResults) -> bool:
    """End the job as trained: why it stopped, its best epoch's evaluation and its exports."""
    with write_session(engine) as session:
        done = fenced_update(
            session,
            lease,
            status=JobStatus.succeeded,
            stop_reason=results.stop_reason,
            best_epoch=results.best_epoch,
            val_metrics=_as_json(results.val_metrics),
            test_metrics=_as_json(results.test_metrics),
            exports=[export.model_dump(mode="json") for export in results.exports],
            finished_at=database_now(session),
            progress=1.0,
            lease_expires_at=None,
            runtime_seconds=runtime_seconds,
            error_reason=None,
            error_message=None,
        )
        if done:
            outbox.status_changed(
                session, job_id=lease.job_id, status=JobStatus.succeeded, attempt=lease.attempt
            )
    if done:
        logger.info("job %s succeeded", lease.job_id)
    return done


def fail(
    engine: Engine, *, lease: Lease, reason: FailureReason, message: str, runtime_seconds: float
) -> bool:
    """End the attempt with an error. A retryable one queues the job again while
    attempts remain; anything else (or the last attempt) fails the job."""
    with write_session(engine) as session:
        job = session.exec(select(Job).where(*fence(lease)).with_for_update()).first()
        if job is None:
            return False
        job.failures += 1
        retry = reason.retryable and job.failures < job.max_attempts
        job.status = JobStatus.queued if retry else JobStatus.failed
        job.finished_at = None if retry else stamp_now(session)
        job.stop_reason = None if retry else StopReason.of_failure(reason)
        job.error_reason, job.error_message = reason, message
        job.worker_id = job.lease_expires_at = None
        job.runtime_seconds = runtime_seconds
        session.add(job)
        outbox.status_changed(
            session, job_id=lease.job_id, status=job.status, attempt=lease.attempt, error=(reason, message)
        )
        if retry:
            wakeup.notify_queued(session, job_id=lease.job_id)
    log = "job %s: attempt %d failed (%s), queued again: %s" if retry else "job %s failed (%s): %s"
    args = (lease.job_id, lease.attempt, reason, message) if retry else (lease.job_id, reason, message)
    logger.warning(log, *args)
    return True


def _as_json(value: BaseModel | None) -> dict[str, Any] | None:
    return None if value is None else value.model_dump(mode="json")


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
            outbox.status_changed(
                session, job_id=lease.job_id, status=JobStatus.queued, attempt=lease.attempt
            )
            wakeup.notify_queued(session, job_id=lease.job_id)
    if done:
        logger.info("job %s handed back to the queue", lease.job_id)
    return done
