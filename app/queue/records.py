"""What a running job reports, written under its lease: start, progress, epochs, checkpoints."""

from __future__ import annotations

from sqlalchemy import Engine, delete
from sqlmodel import col, select

from app.db import write_session
from app.models import Checkpoint, EpochMetric, Job

from .leases import Lease, fence, fenced_update


def record_start(engine: Engine, *, lease: Lease, device: str, precision: str) -> bool:
    with write_session(engine) as session:
        return fenced_update(session, lease, device=device, precision=precision)


def record_progress(engine: Engine, *, lease: Lease, epoch: int, progress: float) -> bool:
    with write_session(engine) as session:
        return fenced_update(session, lease, current_epoch=epoch, progress=progress)


def record_epoch(engine: Engine, *, lease: Lease, metrics: dict[str, float], progress: float) -> bool:
    """Store one finished epoch; a resumed attempt's row replaces the lost attempt's row."""
    epoch = int(metrics["epoch"])
    with write_session(engine) as session:
        if not fenced_update(session, lease, current_epoch=epoch, progress=progress):
            return False
        session.execute(
            delete(EpochMetric).where(
                col(EpochMetric.job_id) == lease.job_id, col(EpochMetric.epoch) == epoch
            )
        )
        session.add(EpochMetric(job_id=lease.job_id, attempt=lease.attempt, **metrics))
    return True


def record_checkpoint(
    engine: Engine, *, lease: Lease, epoch: int, file_name: str, size_bytes: int, sha256: str, is_best: bool
) -> list[str] | None:
    """List a complete checkpoint file; return the file names no longer needed (to delete),
    or None when the lease is lost. Only the latest and the best checkpoint stay listed,
    and a hand-back's mid-epoch checkpoint is superseded by any newer epoch checkpoint."""
    with write_session(engine) as session:
        job = session.exec(select(Job).where(*fence(lease))).first()
        if job is None:
            return None
        rows = session.exec(select(Checkpoint).where(Checkpoint.job_id == lease.job_id)).all()
        for row in rows:
            if row.epoch == epoch:
                session.delete(row)
            elif is_best and row.is_best:
                row.is_best = False
                session.add(row)
        session.flush()
        session.add(
            Checkpoint(
                job_id=lease.job_id,
                epoch=epoch,
                file_name=file_name,
                size_bytes=size_bytes,
                sha256=sha256,
                is_best=is_best,
            )
        )
        stale = [r for r in rows if r.epoch != epoch and not r.is_best and r.epoch < epoch]
        for row in stale:
            session.delete(row)
        unneeded = [r.file_name for r in stale if r.file_name != file_name]
        if job.resume_file is not None:
            unneeded.append(job.resume_file)
            job.resume_file = None
            session.add(job)
        return unneeded
