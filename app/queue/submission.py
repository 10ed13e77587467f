"""Jobs entering and leaving the queue from the API: submit (idempotent) and cancel."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.contract import StopReason
from app.db import read_session, write_session
from app.hyperparameters import Hyperparameters
from app.models import Job, JobCreate, JobLabel, JobStatus, JobTag, utcnow
from app.resources import Resources
from app.security import ANONYMOUS_OWNER

from . import outbox, wakeup
from .clock import stamp_now
from .ordering import queue_order_at

logger = logging.getLogger(__name__)


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request body."""


class JobIsFinal(Exception):
    """The job has already ended; it cannot be cancelled."""

    def __init__(self, status: JobStatus) -> None:
        super().__init__(f"the job already ended ({status.value})")
        self.status = status


# Hyperparameters added after idempotency keys were: left out of the hash at their default, like
# default resources and no tags, so that a request stored before them hashes as it did then.
LATER_HYPERPARAMETERS = (
    "augment",
    "normalize",
    "cache",
    "skip_bad_images",
    "init_from",
    "freeze_backbone",
    "unfreeze_at_epoch",
    "early_stopping_min_epochs",
    "export",
    "keep_checkpoints_last",
    "keep_checkpoints_best",
)


def request_hash(job_in: JobCreate) -> str:
    exclude: dict[str, Any] = {}
    if job_in.resources == Resources():
        exclude["resources"] = True
    if job_in.priority == 0:
        exclude["priority"] = True  # added later too: requests without it hash as before
    if not job_in.tags:
        exclude["tags"] = True
    hp = job_in.hyperparameters
    # Some defaults depend on the dataset: compare with a request that names only the dataset.
    baseline = Hyperparameters(dataset=hp.dataset, dataset_path=hp.dataset_path)
    exclude["hyperparameters"] = {
        name for name in LATER_HYPERPARAMETERS if getattr(hp, name) == getattr(baseline, name)
    }
    return hashlib.sha256(job_in.model_dump_json(exclude=exclude).encode()).hexdigest()


def submit(
    engine: Engine, *, job_in: JobCreate, owner: str = ANONYMOUS_OWNER, idempotency_key: str | None = None
) -> tuple[Job, bool]:
    """Queue a job; returns (job, created). With an idempotency key already used for the
    same request, returns the job it created; for another request, IdempotencyConflict."""
    digest = request_hash(job_in)
    job = new_job(
        job_in, owner=owner, idempotency_key=idempotency_key, request_hash=digest if idempotency_key else None
    )
    try:
        with write_session(engine) as session:
            if idempotency_key is not None and (earlier := _by_key(session, owner, idempotency_key)):
                return _replayed(earlier, digest), False
            add_queued(session, [job])
    except IntegrityError:
        # Another request with the same key won the race (PostgreSQL; SQLite serialises writers).
        assert idempotency_key is not None
        with read_session(engine) as session:
            earlier = _by_key(session, owner, idempotency_key)
            assert earlier is not None
            return _replayed(earlier, digest), False
    logger.info("job %s queued", job.id)
    return job, True


def new_job(job_in: JobCreate, *, owner: str, created_at: datetime | None = None, **columns: Any) -> Job:
    """The row of a job requested by `job_in`, queued at `created_at` (now by default); `columns`
    sets the rest (an idempotency key, a sweep id)."""
    created_at = created_at or utcnow()
    return Job(
        created_at=created_at,
        queue_order_at=queue_order_at(created_at, job_in.priority),
        name=job_in.name,
        owner=owner,
        hyperparameters=job_in.hyperparameters.model_dump(mode="json"),
        max_attempts=job_in.max_attempts,
        priority=job_in.priority,
        max_runtime_seconds=job_in.max_runtime_seconds,
        devices=job_in.resources.devices,
        device_kind=job_in.hyperparameters.device,
        labels=job_in.resources.labels,
        tags=job_in.tags,
        **columns,
    )


def add_queued(session: Session, jobs: list[Job]) -> None:
    """Insert new jobs' rows (from new_job) with their labels, tags and queued events, and wake workers."""
    session.add_all(jobs)
    session.flush()
    session.add_all(JobLabel(job_id=job.id, label=label) for job in jobs for label in job.labels)
    session.add_all(JobTag(job_id=job.id, tag=tag) for job in jobs for tag in job.tags)
    for job in jobs:
        outbox.status_changed(session, job_id=job.id, status=JobStatus.queued, attempt=0)
    if jobs:
        wakeup.notify_queued(session, job_id=jobs[0].id)  # one NOTIFY reaches every listening worker


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
        job.stop_reason = StopReason.cancelled
        job.finished_at = stamp_now(session)
        job.worker_id = None
        job.lease_expires_at = None
        session.add(job)
        outbox.status_changed(session, job_id=job.id, status=JobStatus.cancelled, attempt=job.attempts)
        session.flush()
        session.refresh(job)  # finished_at as the database wrote it
    logger.info("job %s cancelled", job_id)
    return job
