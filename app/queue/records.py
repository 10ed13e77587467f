"""What a running job reports, written under its lease: start, progress, epochs, checkpoints."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from app.db import write_session
from app.models import Checkpoint, EpochMetric, Job, MetricPublic

from . import events
from .leases import Lease, fence, fenced_update


@dataclass(frozen=True)
class CheckpointFile:
    """A complete checkpoint file under the job's artifacts directory."""

    epoch: int
    file_name: str
    size_bytes: int
    sha256: str
    is_best: bool


def record_start(engine: Engine, *, lease: Lease, device: str, precision: str) -> bool:
    with write_session(engine) as session:
        return fenced_update(session, lease, device=device, precision=precision)


def record_progress(engine: Engine, *, lease: Lease, epoch: int, progress: float) -> bool:
    with write_session(engine) as session:
        return fenced_update(session, lease, current_epoch=epoch, progress=progress)


def record_epoch(
    engine: Engine,
    *,
    lease: Lease,
    metrics: dict[str, float],
    progress: float,
    checkpoint: CheckpointFile | None = None,
) -> list[str] | None:
    """Store one finished epoch, and the checkpoint written at its end if any, in one transaction.
    A resumed attempt's row replaces the lost attempt's row. Returns the files no longer needed
    (see record_checkpoint), or None when the lease is lost."""
    epoch = int(metrics["epoch"])
    with write_session(engine) as session:
        job = session.exec(select(Job).where(*fence(lease)).with_for_update()).first()
        if job is None:
            return None
        job.current_epoch, job.progress = epoch, progress
        session.add(job)
        session.execute(
            delete(EpochMetric).where(
                col(EpochMetric.job_id) == lease.job_id, col(EpochMetric.epoch) == epoch
            )
        )
        row = EpochMetric(job_id=lease.job_id, attempt=lease.attempt, **metrics)
        session.add(row)
        events.epoch_recorded(
            session, job_id=lease.job_id, metrics=MetricPublic.model_validate(row, from_attributes=True)
        )
        return _list_checkpoint(session, job, checkpoint) if checkpoint is not None else []


def record_checkpoint(engine: Engine, *, lease: Lease, checkpoint: CheckpointFile) -> list[str] | None:
    """List a complete checkpoint file; return the file names no longer needed (to delete),
    or None when the lease is lost. Only the latest and the best checkpoint stay listed,
    and a hand-back's mid-epoch checkpoint is superseded by any newer epoch checkpoint."""
    with write_session(engine) as session:
        job = session.exec(select(Job).where(*fence(lease)).with_for_update()).first()
        if job is None:
            return None
        return _list_checkpoint(session, job, checkpoint)


def _list_checkpoint(session: Session, job: Job, new: CheckpointFile) -> list[str]:
    rows = session.exec(select(Checkpoint).where(Checkpoint.job_id == job.id)).all()
    for row in rows:
        if row.epoch == new.epoch:
            session.delete(row)
        elif new.is_best and row.is_best:
            row.is_best = False
            session.add(row)
    session.flush()
    listed = Checkpoint(
        job_id=job.id,
        epoch=new.epoch,
        file_name=new.file_name,
        size_bytes=new.size_bytes,
        sha256=new.sha256,
        is_best=new.is_best,
    )
    session.add(listed)
    events.checkpoint_listed(session, checkpoint=listed)
    stale = [r for r in rows if r.epoch != new.epoch and not r.is_best and r.epoch < new.epoch]
    for row in stale:
        session.delete(row)
    unneeded = [r.file_name for r in stale if r.file_name != new.file_name]
    if job.resume_file is not None:
        unneeded.append(job.resume_file)
        job.resume_file = job.resume_sha256 = None
        session.add(job)
    return unneeded
