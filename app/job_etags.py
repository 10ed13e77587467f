"""ETags for the routes that pollers call (GET /jobs/{id} and /jobs/{id}/metrics), and a cache of
their serialised bodies keyed by the same version.

A job's version is a digest of everything its body is built from: the job's row (every column),
the count and largest id of its metric rows and of its checkpoints (rows are only inserted or
deleted, never changed in place: a retried epoch's row is replaced by one with a new id), and,
while it is queued, its waiting reason and place in the queue. One exception, documented in the
README: a running job's duration_seconds counts up with the clock, and does not change the ETag;
a 304 leaves the client with the figure of its last 200 (started_at gives it exactly).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, select
from sqlmodel import Session, col

from app import queue
from app.models import Checkpoint, EpochMetric, Job, JobStatus

# Bodies of this many (job, version, route) keys stay serialised: pollers of a few hundred jobs.
CACHED_BODIES = 256
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "If-None-Match matched the ETag: the job and its rows are as they were."}
}

_JOB_COLUMNS = [column.key for column in Job.__table__.columns]  # type: ignore[attr-defined]


def _row_aggregate(model: type[EpochMetric] | type[Checkpoint], aggregate: ColumnElement[Any]) -> Any:
    return select(aggregate).where(col(model.job_id) == bindparam("job_id")).scalar_subquery()


# One statement, each part an index range on (job_id, ...): the unique keys of both tables.
_ROWS_VERSION = select(
    _row_aggregate(EpochMetric, func.count()),
    _row_aggregate(EpochMetric, func.max(EpochMetric.id)),
    _row_aggregate(Checkpoint, func.count()),
    _row_aggregate(Checkpoint, func.max(Checkpoint.id)),
)


def job_version(session: Session, job: Job) -> str:
    """The opaque part of the job's ETag: changes whenever its body would (but see the module's note)."""
    rows = tuple(session.execute(_ROWS_VERSION, {"job_id": job.id}).one())
    parts: tuple[Any, ...] = (tuple(getattr(job, name) for name in _JOB_COLUMNS), rows)
    if job.status == JobStatus.queued:
        parts += (queue.waiting_reason(session, job=job), queue.queue_place(session, job=job))
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def etag_header(version: str) -> str:
    # Weak: a running job's body differs in its duration_seconds under one version.
    return f'W/"{version}"'


def body_is_fixed(job: Job) -> bool:
    """Whether the version fixes every byte of the body: not while duration_seconds counts up."""
    return job.started_at is None or job.finished_at is not None


class BodyCache:
    """Serialised bodies by (route, job id, version, query), least recently used dropped first.
    Shared by the request threads, hence the lock; an entry is never stale, as its key holds the
    version it was built at."""

    def __init__(self, size: int = CACHED_BODIES) -> None:
        self._size = size
        self._bodies: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_build(self, key: tuple[Any, ...], build: Callable[[], bytes]) -> bytes:
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
                return body
        body = build()  # outside the lock: building reads the database
        with self._lock:
            self._bodies[key] = body
            if len(self._bodies) > self._size:
                self._bodies.popitem(last=False)
        return body
