"""Sweeps in the queue: all of a sweep's jobs queued in one transaction, cancelled in one, and
its max_parallel as SQL for the claim.

max_parallel is part of the claim's WHERE (sweep_has_room): a queued job of a sweep that already
runs max_parallel jobs is stepped over, like a job the worker cannot serve. On PostgreSQL, two
claimers at READ COMMITTED can both count the same running jobs and both pass; so a claim that
took a sweep's job then locks the sweep's row and counts again (too_many_running): the second
claimer waits for the first to commit, sees its job, and rolls back its own claim.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Engine, func, or_, update
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from app.contract import StopReason
from app.db import write_session
from app.models import Job, JobCreate, JobStatus, Sweep, utcnow

from . import outbox
from .clock import database_now
from .submission import add_queued, new_job

logger = logging.getLogger(__name__)

NO_LIMIT = 2**31 - 1  # a sweep without max_parallel


def create_sweep(engine: Engine, *, sweep: Sweep, jobs: Sequence[JobCreate]) -> Sweep:
    """The sweep and every one of its jobs, queued in one transaction: all or nothing."""
    now = utcnow()
    sweep.created_at = now
    # A microsecond apart, so that workers claim (and lists show) the jobs in the sweep's order.
    rows = [
        new_job(job_in, owner=sweep.owner, created_at=now + timedelta(microseconds=number), sweep_id=sweep.id)
        for number, job_in in enumerate(jobs)
    ]
    with write_session(engine) as session:
        session.add(sweep)
        session.flush()
        add_queued(session, rows)
    logger.info("sweep %s queued with %d jobs", sweep.id, len(rows))
    return sweep


def cancel_sweep(engine: Engine, *, sweep_id: str) -> list[str]:
    """Cancel the sweep's queued and running jobs, each as cancel() does (its worker sees the lease
    gone and stops), in one conditional UPDATE: on PostgreSQL a job that a worker ends at the same
    moment is re-read, found ended and left as it ended. Returns the cancelled ids."""
    with write_session(engine) as session:
        cancelled = session.execute(
            update(Job)
            .where(
                col(Job.sweep_id) == sweep_id,
                col(Job.status).in_([JobStatus.queued, JobStatus.running]),
            )
            .values(
                status=JobStatus.cancelled,
                stop_reason=StopReason.cancelled.value,
                finished_at=database_now(session),
                worker_id=None,
                lease_expires_at=None,
            )
            .returning(col(Job.id), col(Job.attempts))
            .execution_options(synchronize_session=False)
        ).all()
        for job_id, attempt in cancelled:
            outbox.status_changed(session, job_id=job_id, status=JobStatus.cancelled, attempt=attempt)
    logger.info("sweep %s: %d jobs cancelled", sweep_id, len(cancelled))
    return [job_id for job_id, _ in cancelled]


def running_count(jobs: type[Job] = Job) -> ColumnElement[int]:
    """How many jobs of `jobs`' sweep run now: a count along ix_jobs_sweep_status."""
    running = aliased(Job)
    return (
        select(func.count())
        .select_from(running)
        .where(col(running.sweep_id) == col(jobs.sweep_id), col(running.status) == JobStatus.running)
        .scalar_subquery()
    )


def sweep_has_room(jobs: type[Job] = Job) -> ColumnElement[bool]:
    """A WHERE clause over `jobs` (Job or an alias): not in a sweep, or its sweep runs fewer than
    its max_parallel jobs. Both subqueries sit right under the claim's SELECT, so that they
    correlate with its row (nested one level deeper, the count would not)."""
    limit = select(Sweep.max_parallel).where(col(Sweep.id) == col(jobs.sweep_id)).scalar_subquery()
    return or_(col(jobs.sweep_id).is_(None), running_count(jobs) < func.coalesce(limit, NO_LIMIT))


def too_many_running(session: Session, *, sweep_id: str) -> bool:
    """After a claim took one of the sweep's jobs (in this transaction): lock the sweep's row, then
    count its running jobs again. The lock makes concurrent claimers of the same sweep take turns,
    and each count sees the jobs the claimers before it committed."""
    limit = session.exec(select(Sweep.max_parallel).where(Sweep.id == sweep_id).with_for_update()).one()
    if limit is None:
        return False
    running = session.exec(
        select(func.count()).select_from(Job).where(Job.sweep_id == sweep_id, Job.status == JobStatus.running)
    ).one()
    return running > limit


def sweep_holds_back(session: Session, *, job: Job) -> str | None:
    """Why a queued job of a sweep waits although a worker could run it: its sweep already runs
    its max_parallel jobs. None otherwise."""
    if job.sweep_id is None:
        return None
    limit = session.exec(select(Sweep.max_parallel).where(Sweep.id == job.sweep_id)).one_or_none()
    if limit is None:
        return None
    running = session.exec(
        select(func.count())
        .select_from(Job)
        .where(col(Job.sweep_id) == job.sweep_id, col(Job.status) == JobStatus.running)
    ).one()
    if running < limit:
        return None
    jobs = f"{running} job{'s' if running != 1 else ''}"
    return f"its sweep {job.sweep_id} runs {jobs} already, its max_parallel ({limit})"
