"""Events written beside each change of a job, in the same transaction (an outbox),
and read back in id order by the event stream, so that a client can replay a job's
history and resume after the last event it saw without losing or repeating one.

Ids grow in commit order because SQLite has one writer at a time. (On PostgreSQL
a sequence value can commit after a larger one; a reader there must hold back
ids newer than the oldest transaction still open, or use LISTEN/NOTIFY.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from app.db import read_session
from app.models import Checkpoint, CheckpointPublic, EventKind, Job, JobEvent, JobStatus, MetricPublic, utcnow


def status_changed(
    session: Session,
    *,
    job_id: str,
    status: JobStatus,
    attempt: int,
    error: tuple[str, str] | None = None,
) -> None:
    """`error` is (reason, message) when a failure caused the change."""
    data: dict[str, Any] = {
        "status": status.value,
        "attempt": attempt,
        "error": {"reason": error[0], "message": error[1]} if error else None,
        "at": utcnow().isoformat(),
    }
    session.add(JobEvent(job_id=job_id, kind=EventKind.status, data=data))


def epoch_recorded(session: Session, *, job_id: str, metrics: MetricPublic) -> None:
    session.add(JobEvent(job_id=job_id, kind=EventKind.epoch, data=metrics.model_dump(mode="json")))


def checkpoint_listed(session: Session, *, checkpoint: Checkpoint) -> None:
    data = CheckpointPublic.from_row(checkpoint).model_dump(mode="json")
    session.add(JobEvent(job_id=checkpoint.job_id, kind=EventKind.checkpoint, data=data))


@dataclass(frozen=True)
class Replay:
    """A job's events after a cursor, and its state, read in one snapshot."""

    events: list[JobEvent]
    status: JobStatus
    epoch: int
    progress: float


def replay(engine: Engine, *, job_id: str, after_id: int) -> Replay:
    """Every event of the job after `after_id`. As the events and the job's status come from one
    read transaction, a final status here means its status event is in `events` or at or before `after_id`."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(job_id)
        rows = session.exec(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, col(JobEvent.id) > after_id)
            .order_by(col(JobEvent.id))
        ).all()
        return Replay(events=list(rows), status=job.status, epoch=job.current_epoch, progress=job.progress)


def events_after(engine: Engine, *, after_id: int, limit: int) -> list[JobEvent]:
    """Events of every job after `after_id`, oldest first."""
    with read_session(engine) as session:
        return list(
            session.exec(
                select(JobEvent).where(col(JobEvent.id) > after_id).order_by(col(JobEvent.id)).limit(limit)
            )
        )


def last_event_id(engine: Engine) -> int:
    with read_session(engine) as session:
        return session.exec(select(func.max(JobEvent.id))).one() or 0


def progress_of(engine: Engine, *, job_ids: list[str]) -> list[tuple[str, JobStatus, int, float]]:
    """(id, status, current epoch, progress) of these jobs."""
    with read_session(engine) as session:
        rows = session.exec(
            select(Job.id, Job.status, Job.current_epoch, Job.progress).where(col(Job.id).in_(job_ids))
        ).all()
        return [tuple(row) for row in rows]  # type: ignore[misc]
