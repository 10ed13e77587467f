"""Jobs that leave files behind as a worker would: checkpoints in attempt-N/, a log, exports."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine, func
from sqlmodel import col, select

from app import queue
from app.artifacts import attempt_file_name, job_dir, log_path
from app.contract import CheckpointFile, ExportFile, RunResults, StopReason
from app.db import read_session
from app.models import EpochMetric
from tests.factories import ONE_CPU, epoch_metrics


def checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}.pt"


def claim_next(engine: Engine) -> queue.Lease:
    lease = queue.claim(engine, worker_id="w", lease_seconds=60, capabilities=ONE_CPU)
    assert lease is not None
    return lease


def record_epochs(
    engine: Engine,
    artifacts_dir: Path,
    lease: queue.Lease,
    val_losses: Sequence[float],
    *,
    first: int = 1,
    size_bytes: int = 1000,
) -> list[str]:
    """Train epochs `first`, `first`+1, ... with these val_loss values: each writes its checkpoint
    (marked best as the loop marks it, earlier epochs' rows included) and, as the worker does, deletes what record_epoch returns.
    Returns every file name record_epoch gave back."""
    folder = job_dir(artifacts_dir, lease.job_id)
    with read_session(engine) as session:
        best = session.exec(
            select(func.min(EpochMetric.val_loss)).where(
                EpochMetric.job_id == lease.job_id, col(EpochMetric.epoch) < first
            )
        ).one()
    unneeded_all: list[str] = []
    for epoch, val_loss in enumerate(val_losses, start=first):
        name = attempt_file_name(lease.attempt, checkpoint_name(epoch))
        data = bytes([epoch % 256]) * (size_bytes + epoch)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        is_best = best is None or val_loss < best
        best = val_loss if is_best else best
        checkpoint = CheckpointFile(
            epoch=epoch,
            file_name=name,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            is_best=is_best,
        )
        unneeded = queue.record_epoch(
            engine,
            lease=lease,
            metrics=epoch_metrics(epoch, val_loss=val_loss),
            progress=0.5,
            checkpoint=checkpoint,
        )
        assert unneeded is not None
        for stale in unneeded:
            (folder / stale).unlink(missing_ok=True)
        unneeded_all += unneeded
    return unneeded_all


def succeed_with_export(
    engine: Engine, artifacts_dir: Path, lease: queue.Lease, *, size_bytes: int = 500
) -> None:
    """End the job as trained, with a log and one safetensors export on disk."""
    folder = job_dir(artifacts_dir, lease.job_id)
    log = log_path(folder, lease.attempt)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("epoch 1 ...\n")
    name = attempt_file_name(lease.attempt, "model.safetensors")
    data = b"s" * size_bytes
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    export = ExportFile(
        name="model.safetensors",
        format="safetensors",
        file_name=name,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    results = RunResults(stop_reason=StopReason.completed, best_epoch=None, exports=[export])
    assert queue.succeed(engine, lease=lease, runtime_seconds=1.0, results=results)


def files_of(artifacts_dir: Path, job_id: str) -> list[str]:
    folder = job_dir(artifacts_dir, job_id)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
