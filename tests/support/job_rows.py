"""Jobs written straight into the table, for tests that need ids, owners or results the queue
would not give (two ids that share a prefix, a finished job of a chosen duration)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from app.db import write_session
from app.hyperparameters import Hyperparameters
from app.models import Job, JobTag, new_job_id, utcnow
from app.queue.ordering import queue_order_at


def insert_job(
    engine: Engine, *, job_id: str | None = None, tags: list[str] | None = None, **fields: Any
) -> str:
    """A job row (queued, digits, owner anonymous unless `fields` say otherwise); returns its id."""
    created_at: datetime = fields.pop("created_at", utcnow())
    hyperparameters = Hyperparameters(**fields.pop("hyperparameters", {})).model_dump(mode="json")
    job = Job(
        id=job_id or new_job_id(),
        created_at=created_at,
        queue_order_at=queue_order_at(created_at, fields.get("priority", 0)),
        hyperparameters=hyperparameters,
        tags=tags or [],
        **fields,
    )
    with write_session(engine) as session:
        session.add(job)
        session.flush()
        session.add_all(JobTag(job_id=job.id, tag=tag) for tag in job.tags)
    return job.id
