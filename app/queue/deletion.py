"""Rows that go away: a deleted job with everything it wrote, one deleted checkpoint, and the
checkpoints of jobs that ended longer ago than TRAINQ_RETENTION_DAYS.

Each returns the files its rows named, for the caller to remove after the commit (app.housekeeping):
a crash in between leaves a file that no row names, never a row that names a missing file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col, select

from app.db import read_session, write_session
from app.models import Checkpoint, EpochMetric, Job, JobEvent, JobLabel, JobStatus, JobTag

from .clock import database_now

logger = logging.getLogger(__name__)

FINAL_STATUSES = tuple(status for status in JobStatus if status.is_final)
# Jobs whose checkpoints one retention transaction removes: a short write lock each.
EXPIRE_BATCH_JOBS = 200


class JobNotEnded(Exception):
    """The job is queued or running: it must end (be cancelled) before it can be deleted."""

    def __init__(self, status: JobStatus) -> None:
        super().__init__(f"the job is {status.value}")
        self.status = status


class CheckpointInUse(Exception):
    """The checkpoint is the job's best, or the one its next attempt resumes from; str() says which."""


def delete_job(engine: Engine, *, job_id: str, owner: str | None = None) -> bool:
    """Delete an ended job and every row it has (metrics, checkpoints, events, labels, tags).
    False for an unknown job (or, given an owner, another owner's); JobNotEnded for one that
    is queued or running. Its files are the caller's to remove, after this returns."""
    with write_session(engine) as session:
        # Locked: a worker's write to the job waits for this and then finds it gone.
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or (owner is not None and job.owner != owner):
            return False
        if not job.status.is_final:
            raise JobNotEnded(job.status)
        for table in (EpochMetric, Checkpoint, JobEvent, JobLabel, JobTag):
            session.execute(delete(table).where(col(table.job_id) == job_id))
        session.execute(delete(Job).where(col(Job.id) == job_id))
    logger.info("job %s deleted (%s)", job_id, job.status.value)
    return True


def is_deleted(engine: Engine, *, job_id: str) -> bool:
    """Whether the job's row is gone: a worker that lost its lease asks, to remove what its
    training process may have written after the deletion removed the job's folder."""
    with read_session(engine) as session:
        return session.get(Job, job_id) is None


def delete_checkpoint(engine: Engine, *, job_id: str, epoch: int) -> str | None:
    """Delete the job's checkpoint of `epoch`; returns its file name (None when it has none).
    CheckpointInUse for the best checkpoint, and for the latest while the job runs or waits to
    run again (its next attempt resumes from it)."""
    with write_session(engine) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None:
            return None
        row = session.exec(
            select(Checkpoint).where(Checkpoint.job_id == job_id, Checkpoint.epoch == epoch)
        ).first()
        if row is None:
            return None
        _refuse_in_use(session, job, row)
        session.delete(row)
    logger.info("job %s: checkpoint of epoch %d deleted (%s)", job_id, epoch, row.file_name)
    return row.file_name


def _refuse_in_use(session: Session, job: Job, row: Checkpoint) -> None:
    if row.is_best:
        raise CheckpointInUse(
            f"checkpoint {row.epoch} is the job's best (is_best): it cannot be deleted; "
            "delete the job to remove it"
        )
    # The latest, even when a hand-back left a resume file: retention keeps it as the fallback too.
    resumes = job.status == JobStatus.running or (job.status == JobStatus.queued and job.attempts > 0)
    if not resumes:
        return
    latest = session.exec(
        select(col(Checkpoint.epoch))
        .where(Checkpoint.job_id == job.id)
        .order_by(col(Checkpoint.epoch).desc())
    ).first()
    if latest == row.epoch:
        raise CheckpointInUse(
            f"checkpoint {row.epoch} is the one the {job.status.value} job resumes from: it cannot be "
            "deleted until the job has ended (cancel it first) or a newer checkpoint is listed"
        )


@dataclass(frozen=True)
class ExpiredFiles:
    """What retention removed of one job: the files its rows named, relative to its folder."""

    job_id: str
    file_names: list[str]


def expire_checkpoints(engine: Engine, *, ended_more_than_s: float) -> list[ExpiredFiles]:
    """Delete the checkpoint rows, and clear the resume file, of jobs that ended more than
    `ended_more_than_s` seconds ago (by the database's clock); their metrics, exports and the job itself stay. Returns what each job's
    rows named. Every file is returned by one call only, even with several API processes: the
    rows are deleted by statements that return what they deleted."""
    expired: dict[str, list[str]] = {}
    while True:
        batch = _expire_batch(engine, ended_more_than_s)
        for job_id, names in batch.items():
            expired.setdefault(job_id, []).extend(names)
        if len(batch) < EXPIRE_BATCH_JOBS:
            break
    return [ExpiredFiles(job_id=job_id, file_names=names) for job_id, names in expired.items()]


def _expire_batch(engine: Engine, ended_more_than_s: float) -> dict[str, list[str]]:
    with write_session(engine) as session:
        finished_before = database_now(session, plus_s=-ended_more_than_s)
        ended_long_ago = (col(Job.status).in_(FINAL_STATUSES), col(Job.finished_at) < finished_before)
        with_checkpoints = select(Checkpoint.job_id).join(Job, col(Job.id) == col(Checkpoint.job_id))
        with_resume = select(Job.id).where(col(Job.resume_file).is_not(None))
        job_ids: list[str] = list(
            session.execute(
                with_checkpoints.where(*ended_long_ago)
                .union(with_resume.where(*ended_long_ago))
                .limit(EXPIRE_BATCH_JOBS)
            )
            .scalars()
            .all()
        )
        if not job_ids:
            return {}
        found: dict[str, list[str]] = {job_id: [] for job_id in job_ids}
        deleted = session.execute(
            delete(Checkpoint)
            .where(col(Checkpoint.job_id).in_(job_ids))
            .returning(col(Checkpoint.job_id), col(Checkpoint.file_name))
        ).all()
        # Read under a lock before the update: RETURNING would give the new value, NULL.
        resumes = session.exec(
            select(Job.id, Job.resume_file)
            .where(col(Job.id).in_(job_ids), col(Job.resume_file).is_not(None))
            .with_for_update()
        ).all()
        session.execute(
            update(Job)
            .where(col(Job.id).in_([job_id for job_id, _ in resumes]))
            .values(resume_file=None, resume_sha256=None)
        )
        for job_id, file_name in [*deleted, *resumes]:
            if file_name is not None:
                found[job_id].append(file_name)
    return {job_id: names for job_id, names in found.items() if names}
