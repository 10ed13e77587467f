"""Jobs entering and leaving the queue from the API: submit (idempotent) and cancel."""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.db import read_session, write_session
from app.models import Job, JobCreate, JobStatus
from app.security import ANONYMOUS_OWNER

from . import events, wakeup
from .clock import database_now

logger = logging.getLogger(__name__)


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request body."""


class JobIsFinal(Exception):
    """The job has already ended; it cannot be cancelled."""

    def __init__(self, status: JobStatus) -> None:
        super().__init__(f"the job already ended ({status.value})")
        self.status = status


def request_hash(job_in: JobCreate) -> str:
    return hashlib.sha256(job_in.model_dump_json().encode()).hexdigest()


def submit(
    engine: Engine, *, job_in: JobCreate, owner: str = ANONYMOUS_OWNER, idempotency_key: str | None = None
) -> tuple[Job, bool]:
    """Queue a job; returns (job, created). With an idempotency key already used for the
    same request, returns the job it created; for another request, IdempotencyConflict."""
    digest = request_hash(job_in)
    job = Job(
        name=job_in.name,
        owner=owner,
        hyperparameters=job_in.hyperparameters.model_dump(mode="json"),
        max_attempts=job_in.max_attempts,
        max_runtime_seconds=job_in.max_runtime_seconds,
        idempotency_key=idempotency_key,
        request_hash=digest if idempotency_key else None,
    )
    try:
        with write_session(engine) as session:
            if idempotency_key is not None and (earlier := _by_key(session, owner, idempotency_key)):
                return _replayed(earlier, digest), False
            session.add(job)
            session.flush()
            events.status_changed(session, job_id=job.id, status=JobStatus.queued, attempt=0)
            wakeup.notify_queued(session, job_id=job.id)
    except IntegrityError:
        # Another request with the same key won the race (PostgreSQL; SQLite serialises writers).
        assert idempotency_key is not None
        with read_session(engine) as session:
            earlier = _by_key(session, owner, idempotency_key)
            assert earlier is not None
            return _replayed(earlier, digest), False
    logger.info("job %s queued", job.id)
    return job, True


def _by_key(session: Session, owner: str, key: str) -> Job | None:
    return session.exec(select(Job).where(Job.owner == owner, Job.idempotency_key == key)).first()


def _replayed(job: Job, digest: str) -> Job:
    if job.request_hash != digest:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request body")
    return job


def cancel(engine: Engine, *, job_id: str, owner: str | None = None) -> Job | None:
    """Cancel a queued or running job (its worker sees the lease gone and stops training).
    Returns None for an unknown job (or, given an owner, another owner's job);
    raises JobIsFinal for one that already ended."""
    with write_session(engine) as session:
        # Locked, so that a worker's succeed or fail at the same moment ends the job either
        # before (and this raises JobIsFinal) or after (and finds its lease gone), never both.
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or (owner is not None and job.owner != owner):
            return None
        if job.status.is_final:
            raise JobIsFinal(job.status)
        job.status = JobStatus.cancelled
        job.finished_at = database_now(session)
        job.worker_id = None
        job.lease_expires_at = None
        session.add(job)
        events.status_changed(session, job_id=job.id, status=JobStatus.cancelled, attempt=job.attempts)
        session.flush()
        session.refresh(job)  # finished_at as the database wrote it
    logger.info("job %s cancelled", job_id)
    return job
