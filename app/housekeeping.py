"""What the API removes from TRAINQ_ARTIFACTS_DIR, always after the rows that named it are gone.

The API holds every job's files whatever the workers share with it (a shared folder, or uploads
from workers on other hosts), so deletions and retention run here, never on a worker.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import col, select

from app import queue
from app.artifacts import (
    deleting_folders,
    is_marked_deleted,
    job_dir,
    mark_deleted,
    remove_job_folder,
    unmark_deleted,
)
from app.db import read_session
from app.models import Job

logger = logging.getLogger(__name__)

# new_job_id(): anything else in the artifacts folder is not a job's.
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
SECONDS_PER_DAY = 86400.0


def delete_job(engine: Engine, *, artifacts_dir: Path, job_id: str, owner: str | None) -> bool:
    """Delete an ended job's rows, then its folder; False when there is no such job (for `owner`).
    queue.JobNotEnded for a queued or running one. The folder is marked first, so that a crash
    after the rows' commit leaves a folder that the start-up sweep knows to remove."""
    folder = job_dir(artifacts_dir, job_id)
    mark_deleted(folder)
    try:
        deleted = queue.delete_job(engine, job_id=job_id, owner=owner)
    except BaseException:
        unmark_deleted(folder)
        raise
    if not deleted:
        unmark_deleted(folder)
        return False
    try:
        remove_job_folder(artifacts_dir, job_id)
    except OSError:
        logger.exception(
            "job %s: deleted, but its folder %s could not be removed; start-up will", job_id, folder
        )
    return True


def delete_checkpoint(engine: Engine, *, artifacts_dir: Path, job_id: str, epoch: int) -> bool:
    """Delete one checkpoint's row, then its file; False when the job has none of that epoch.
    queue.CheckpointInUse for the best one or the one the job resumes from."""
    file_name = queue.delete_checkpoint(engine, job_id=job_id, epoch=epoch)
    if file_name is None:
        return False
    _remove_files(job_dir(artifacts_dir, job_id), [file_name], job_id=job_id)
    return True


def sweep_deleted_jobs(engine: Engine, *, artifacts_dir: Path) -> list[str]:
    """Start-up: remove the folders of deleted jobs whose removal a crash cut short. Only folders
    marked deleted whose job row is gone: a folder without a row but without the mark is one the
    database forgot (app.integrity reports it), and a job being submitted or run has its row (a
    mark on a job that still exists, from a delete that failed or is under way in another API
    process, is left alone). Returns the job ids whose folders it removed; a folder that cannot be
    removed (another API process starting at the same moment removes it) is logged and skipped."""
    if not artifacts_dir.is_dir():
        return []
    removed = []
    for trash in deleting_folders(artifacts_dir):
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(trash.name.rpartition("-")[2])
    # Folders first, rows second: a row is never deleted before its folder is marked.
    marked = [
        p.name
        for p in artifacts_dir.iterdir()
        if _JOB_ID.match(p.name) and p.is_dir() and is_marked_deleted(p)
    ]
    if marked:
        with read_session(engine) as session:
            alive = set(session.exec(select(Job.id).where(col(Job.id).in_(marked))).all())
        for job_id in (job_id for job_id in marked if job_id not in alive):
            try:
                remove_job_folder(artifacts_dir, job_id)
            except OSError as exc:
                logger.warning("job %s: could not remove the folder of the deleted job: %s", job_id, exc)
                continue
            removed.append(job_id)
    for job_id in removed:
        logger.info("job %s: removed the folder its deletion left behind", job_id)
    return removed


@dataclass(frozen=True)
class RetentionReport:
    jobs: int
    files: int
    bytes: int


def expire_checkpoints(engine: Engine, *, artifacts_dir: Path, retention_days: float) -> RetentionReport:
    """Remove the checkpoints (rows, then files) and resume files of jobs that ended more than
    `retention_days` ago; their metrics and exports stay."""
    expired = queue.expire_checkpoints(engine, ended_more_than_s=retention_days * SECONDS_PER_DAY)
    files = size = 0
    for job in expired:
        freed = _remove_files(job_dir(artifacts_dir, job.job_id), job.file_names, job_id=job.job_id)
        files += len(job.file_names)
        size += freed
        logger.info(
            "job %s: ended over %g days ago: removed %d checkpoint files (%d bytes): %s",
            job.job_id,
            retention_days,
            len(job.file_names),
            freed,
            ", ".join(job.file_names),
        )
    return RetentionReport(jobs=len(expired), files=files, bytes=size)


def _remove_files(folder: Path, names: list[str], *, job_id: str) -> int:
    """Unlink files no row names any more; returns the bytes freed. A failure is logged: the
    rows are gone either way, and a file without a row is never served."""
    freed = 0
    for name in names:
        path = folder / name
        try:
            freed += path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError:
            logger.exception("job %s: could not remove %s", job_id, path)
    return freed
