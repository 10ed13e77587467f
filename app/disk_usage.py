"""Bytes that jobs' files take in TRAINQ_ARTIFACTS_DIR, from the rows that list them: checkpoints
(their size_bytes), exports (in the job's exports) and a hand-back's resume file (the only one
without a size in a row: looked up on disk, for the few jobs that have one). Training logs are
not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine, func, text
from sqlmodel import Session, col, select

from app.artifacts import job_dir
from app.db import read_session
from app.models import Checkpoint, Job

# The exports' sizes summed in SQL (a JSON array per job), for /metrics: one row whatever the jobs.
_EXPORT_BYTES = {
    "sqlite": "SELECT COALESCE(SUM(json_extract(e.value, '$.size_bytes')), 0) "
    "FROM jobs, json_each(jobs.exports) AS e WHERE jobs.exports IS NOT NULL",
    "postgresql": "SELECT COALESCE(SUM((e.value ->> 'size_bytes')::bigint), 0) "
    "FROM jobs, json_array_elements(jobs.exports::json) AS e WHERE jobs.exports IS NOT NULL",
}


def disk_bytes(session: Session, jobs: Sequence[Job], *, artifacts_dir: Path) -> dict[str, int]:
    """{job id: bytes of its listed files} for a page of jobs: one aggregate query for all of them."""
    ids = [job.id for job in jobs]
    checkpoint_bytes: dict[str, int] = {}
    if ids:
        rows = session.exec(
            select(Checkpoint.job_id, func.sum(Checkpoint.size_bytes))
            .where(col(Checkpoint.job_id).in_(ids))
            .group_by(col(Checkpoint.job_id))
        ).all()
        checkpoint_bytes = {job_id: int(total or 0) for job_id, total in rows}
    return {
        job.id: checkpoint_bytes.get(job.id, 0)
        + sum(int(export["size_bytes"]) for export in job.exports or [])
        + _resume_bytes(artifacts_dir, job.id, job.resume_file)
        for job in jobs
    }


def total_bytes(engine: Engine, *, artifacts_dir: Path) -> int:
    """Bytes of every job's listed files: what disk_bytes would add up to over all jobs."""
    with read_session(engine) as session:
        checkpoints = session.exec(select(func.coalesce(func.sum(Checkpoint.size_bytes), 0))).one()
        exports = session.execute(text(_EXPORT_BYTES[session.get_bind().dialect.name])).scalar_one()
        resumes = session.exec(select(Job.id, Job.resume_file).where(col(Job.resume_file).is_not(None))).all()
    return int(checkpoints) + int(exports) + sum(_resume_bytes(artifacts_dir, i, name) for i, name in resumes)


def _resume_bytes(artifacts_dir: Path, job_id: str, resume_file: str | None) -> int:
    if resume_file is None:
        return 0
    try:
        return (job_dir(artifacts_dir, job_id) / resume_file).stat().st_size
    except OSError:
        return 0
