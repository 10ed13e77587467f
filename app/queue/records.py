"""What a running job reports, written under its lease: start, progress, and each epoch with its checkpoint."""

from __future__ import annotations

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from app.contract import CheckpointFile, CpuThreads, DatasetInfo, EpochMetrics, WarmStart
from app.db import write_session
from app.models import Checkpoint, EpochMetric, Job
from app.schemas import MetricPublic

from . import outbox
from .leases import Lease, fence, fenced_update
from .retention import checkpoints_to_keep, retention_of


def record_start(
    engine: Engine,
    *,
    lease: Lease,
    device: str,
    precision: str,
    dataset: DatasetInfo | None = None,
    warm_start: WarmStart | None = None,
    cpu_threads: CpuThreads | None = None,
) -> bool:
    """The device, precision and CPU threads in use, and what the run trains on and started from."""
    known = {"dataset_info": dataset.model_dump(mode="json")} if dataset is not None else {}
    if warm_start is not None:
        known["warm_start"] = warm_start.model_dump(mode="json")
    if cpu_threads is not None:
        known["cpu_threads"] = cpu_threads.model_dump(mode="json")
    with write_session(engine) as session:
        return fenced_update(session, lease, device=device, precision=precision, **known)


def record_progress(engine: Engine, *, lease: Lease, epoch: int, progress: float) -> bool:
    with write_session(engine) as session:
        return fenced_update(session, lease, current_epoch=epoch, progress=progress)


def record_epoch(
    engine: Engine,
    *,
    lease: Lease,
    metrics: EpochMetrics,
    progress: float,
    checkpoint: CheckpointFile | None = None,
) -> list[str] | None:
    """Store one finished epoch, and the checkpoint written at its end if any, in one transaction.
    A resumed attempt's row replaces the lost attempt's row. Returns the file names no longer
    needed (to delete), or None when the lease is lost.

    The checkpoints of the last keep_checkpoints_last epochs and of the best keep_checkpoints_best
    stay listed (app.queue.retention), and a hand-back's mid-epoch checkpoint is superseded by any
    newer epoch checkpoint."""
    epoch = metrics.epoch
    with write_session(engine) as session:
        job = session.exec(select(Job).where(*fence(lease)).with_for_update()).first()
        if job is None:
            return None
        job.current_epoch, job.progress = epoch, progress
        if checkpoint is not None and checkpoint.is_best:
            job.best_epoch = epoch
        if job.best_val_accuracy is None or metrics.val_accuracy > job.best_val_accuracy:
            job.best_val_accuracy = metrics.val_accuracy
        session.add(job)
        session.execute(
            delete(EpochMetric).where(
                col(EpochMetric.job_id) == lease.job_id, col(EpochMetric.epoch) == epoch
            )
        )
        row = EpochMetric(job_id=lease.job_id, attempt=lease.attempt, **metrics.model_dump())
        session.add(row)
        outbox.epoch_recorded(
            session, job_id=lease.job_id, metrics=MetricPublic.model_validate(row, from_attributes=True)
        )
        return _list_checkpoint(session, job, checkpoint) if checkpoint is not None else []


def _list_checkpoint(session: Session, job: Job, new: CheckpointFile) -> list[str]:
    rows = session.exec(select(Checkpoint).where(Checkpoint.job_id == job.id)).all()
    unneeded: list[str] = []
    for row in rows:
        if row.epoch == new.epoch:
            # A resumed attempt's checkpoint of an epoch that a lost attempt had listed.
            session.delete(row)
            if row.file_name != new.file_name:
                unneeded.append(row.file_name)
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
    outbox.checkpoint_listed(session, checkpoint=listed)
    others = [r for r in rows if r.epoch != new.epoch]
    keep_last, keep_best, monitor = retention_of(job.hyperparameters)
    flagged = [new.epoch] if new.is_best else [r.epoch for r in others if r.is_best]
    keep = checkpoints_to_keep(
        _monitored(session, job.id, monitor, [new.epoch, *(r.epoch for r in others)]),
        best_epoch=flagged[0] if flagged else None,
        keep_last=keep_last,
        keep_best=keep_best,
        monitor=monitor,
    )
    # The newest is always among the last N (N >= 1): the next attempt resumes from it.
    stale = [r for r in others if r.epoch not in keep]
    for row in stale:
        session.delete(row)
    unneeded += [r.file_name for r in stale if r.file_name != new.file_name]
    if job.resume_file is not None:
        unneeded.append(job.resume_file)
        job.resume_file = job.resume_sha256 = None
        session.add(job)
    return unneeded


def _monitored(session: Session, job_id: str, monitor: str, epochs: list[int]) -> dict[int, float | None]:
    """Each epoch's monitored metric (None for an epoch without its metric row)."""
    column = col(EpochMetric.val_loss) if monitor == "val_loss" else col(EpochMetric.val_accuracy)
    found = dict(
        session.exec(
            select(col(EpochMetric.epoch), column).where(
                EpochMetric.job_id == job_id, col(EpochMetric.epoch).in_(epochs)
            )
        ).all()
    )
    return {epoch: found.get(epoch) for epoch in epochs}
