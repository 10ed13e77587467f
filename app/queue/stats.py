"""Read-only figures about the queue, for monitoring. Nothing here changes a job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, case, func
from sqlmodel import col, select

from app.db import read_session
from app.models import EpochMetric, Job, JobStatus

from .clock import database_now, database_time


@dataclass(frozen=True)
class QueueSnapshot:
    """The queue as one scrape sees it."""

    jobs_by_status: dict[JobStatus, int]  # every status, 0 when none
    oldest_queued_age_s: float  # how long the job waiting longest has waited; 0 when none waits
    active_workers: int  # distinct workers holding a lease that has not run out


@dataclass(frozen=True)
class EpochTally:
    """Epoch rows with an id above a given one, aggregated by the database."""

    last_id: int  # the highest id counted; the given one when there are no new rows
    count: int
    duration_sum_s: float
    at_most: tuple[int, ...]  # rows with duration_seconds <= each bound, in the bounds' order


def queue_snapshot(engine: Engine) -> QueueSnapshot:
    """Leases and waits are judged by the database's clock, as the reaper judges leases."""
    # Each query is answered from an index on jobs (status, created_at) or (status, lease_expires_at).
    with read_session(engine) as session:
        counts = dict(session.exec(select(Job.status, func.count()).group_by(col(Job.status))).all())
        oldest = session.exec(select(func.min(Job.created_at)).where(Job.status == JobStatus.queued)).one()
        now = database_time(session)
        workers = session.exec(
            select(func.count(func.distinct(Job.worker_id))).where(
                Job.status == JobStatus.running, col(Job.lease_expires_at) > database_now(session)
            )
        ).one()
    return QueueSnapshot(
        jobs_by_status={status: counts.get(status, 0) for status in JobStatus},
        oldest_queued_age_s=_seconds_between(_as_utc(oldest), now),
        active_workers=workers,
    )


def epochs_after(engine: Engine, *, after_id: int, bounds_s: Sequence[float]) -> EpochTally:
    """Count, sum and bucket the durations of epoch rows newer than after_id in one
    range scan of the primary key, so a caller keeping running totals never rereads a row."""
    duration = col(EpochMetric.duration_seconds)
    buckets = [func.coalesce(func.sum(case((duration <= bound, 1), else_=0)), 0) for bound in bounds_s]
    query = select(
        func.coalesce(func.max(EpochMetric.id), after_id),
        func.count(),
        func.coalesce(func.sum(duration), 0.0),
        *buckets,
    ).where(col(EpochMetric.id) > after_id)
    with read_session(engine) as session:
        values: list[Any] = list(session.execute(query).one())
    last_id, count, total, *at_most = values
    return EpochTally(
        last_id=int(last_id),
        count=int(count),
        duration_sum_s=float(total),
        at_most=tuple(int(n) for n in at_most),
    )


def _as_utc(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every time the queue writes is UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _seconds_between(start: datetime | None, end: datetime | None) -> float:
    if start is None or end is None:
        return 0.0
    return max(0.0, (end - start).total_seconds())
