"""Events written beside each change of a job, in the same transaction (an outbox),
and read back in id order by the event stream, so that a client can replay a job's
history and resume after the last event it saw without losing or repeating one.

Readers move a cursor past the ids they saw, so ids must become visible in id order.
SQLite has one writer at a time, so they do. On PostgreSQL two transactions can take
ids 1 and 2 and commit 2 first: a reader that saw 2 would never see 1. So there every
transaction takes a transaction-level advisory lock (EVENT_ORDER_LOCK) before it adds
its first event, and holds it to its commit: ids are drawn and committed one writer at
a time. This serialises only the tails of event-writing transactions (from their first
event to their commit); readers take no lock. (The other fix, readers holding back ids
newer than the oldest open transaction, needs each event's transaction id in its row.)
A writer must lock the job rows it changes before its first event, never after, so that
no lock holder waits for a transaction that is waiting for the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from app.contract import FailureReason
from app.db import read_session
from app.models import Checkpoint, EventKind, Job, JobEvent, JobStatus
from app.schemas import CheckpointPublic, MetricPublic

from .clock import database_time

# Any fixed number, the same in every process (pg_advisory_xact_lock takes a bigint).
EVENT_ORDER_LOCK = 0x7472_6169_6E71  # "trainq"


def _append(session: Session, event: JobEvent) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(EVENT_ORDER_LOCK)))
    session.add(event)


def status_changed(
    session: Session,
    *,
    job_id: str,
    status: JobStatus,
    attempt: int,
    error: tuple[FailureReason, str] | None = None,
) -> None:
    """`error` is (reason, message) when a failure caused the change."""
    data: dict[str, Any] = {
        "status": status.value,
        "attempt": attempt,
        "error": {"reason": error[0], "message": error[1]} if error else None,
        "at": database_time(session).isoformat(),
    }
    _append(session, JobEvent(job_id=job_id, kind=EventKind.status, data=data))


def epoch_recorded(session: Session, *, job_id: str, metrics: MetricPublic) -> None:
    _append(session, JobEvent(job_id=job_id, kind=EventKind.epoch, data=metrics.model_dump(mode="json")))


def checkpoint_listed(session: Session, *, checkpoint: Checkpoint) -> None:
    data = CheckpointPublic.from_row(checkpoint).model_dump(mode="json")
    _append(session, JobEvent(job_id=checkpoint.job_id, kind=EventKind.checkpoint, data=data))


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
