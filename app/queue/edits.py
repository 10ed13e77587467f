"""What a job's owner may change after submitting it: name, tags, notes, and priority while it waits."""

from __future__ import annotations

import logging

from sqlalchemy import Engine, delete
from sqlmodel import col

from app.db import write_session
from app.models import Job, JobStatus, JobTag, JobUpdate

from .ordering import queue_order_at

logger = logging.getLogger(__name__)


class PriorityFixed(Exception):
    """The job is no longer queued: its priority no longer orders anything."""

    def __init__(self, status: JobStatus) -> None:
        super().__init__(f"the job is {status.value}: priority can only change while a job is queued")
        self.status = status


def update_job(engine: Engine, *, job_id: str, changes: JobUpdate, owner: str | None = None) -> Job | None:
    """Apply the fields `changes` sets, all or none. Returns None for an unknown job (or, given an
    owner, another owner's job); raises PriorityFixed for a new priority on a job no longer queued
    (the same priority is no change, and passes)."""
    fields = changes.model_fields_set
    with write_session(engine) as session:
        # Locked, so that a claim at the same moment takes the job either before (and a new
        # priority is refused) or after (with its new order).
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or (owner is not None and job.owner != owner):
            return None
        if "priority" in fields and changes.priority != job.priority:
            if job.status != JobStatus.queued:
                raise PriorityFixed(job.status)
            assert changes.priority is not None  # JobUpdate refuses null
            job.priority = changes.priority
            job.queue_order_at = queue_order_at(job.created_at, changes.priority)
        if "name" in fields:
            job.name = changes.name
        if "notes" in fields:
            job.notes = changes.notes
        if "tags" in fields and changes.tags != job.tags:
            assert changes.tags is not None
            job.tags = changes.tags
            session.execute(delete(JobTag).where(col(JobTag.job_id) == job.id))
            session.add_all(JobTag(job_id=job.id, tag=tag) for tag in changes.tags)
        session.add(job)
        session.flush()
        session.refresh(job)
    logger.info("job %s edited: %s", job_id, ", ".join(sorted(fields)) or "nothing")
    return job
