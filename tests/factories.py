"""Builders for test data, apart from the tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import col

from app import queue
from app.contract import CheckpointFile, EpochMetrics, RunResults, StopReason
from app.db import write_session
from app.hyperparameters import Hyperparameters
from app.models import Job, JobCreate
from app.queue.ordering import queue_order_at
from app.resources import Capabilities

# A worker with one CPU, no GPU and no labels: it serves every job that asks for no more than the
# defaults (one device, device auto or cpu, no labels).
ONE_CPU = Capabilities(cuda_devices=0, cpu_devices=1)
# How a job that ran all its epochs ends, for tests that only need it ended.
COMPLETED = RunResults(stop_reason=StopReason.completed, best_epoch=None)


def submit_job(
    engine: Engine, name: str | None = None, max_attempts: int = 3, priority: int = 0, **hyperparameters: Any
) -> Job:
    job_in = JobCreate(
        name=name,
        hyperparameters=Hyperparameters(**hyperparameters),
        max_attempts=max_attempts,
        priority=priority,
    )
    job, created = queue.submit(engine, job_in=job_in)
    assert created
    return job


def backdate(engine: Engine, job: Job, created_at: datetime) -> Job:
    """The job as if it had been submitted at `created_at` (its claim order key moved with it), so
    that tests of aging need not wait for it."""
    order_at = queue_order_at(created_at, job.priority)
    with write_session(engine) as session:
        session.execute(
            update(Job).where(col(Job.id) == job.id).values(created_at=created_at, queue_order_at=order_at)
        )
        stored = session.get(Job, job.id)
        assert stored is not None
        return stored


def epoch_metrics(epoch: int, **overrides: float) -> EpochMetrics:
    metrics: dict[str, float] = {
        "epoch": epoch,
        "train_loss": 1.0 / epoch,
        "train_accuracy": 0.5,
        "val_loss": 1.1 / epoch,
        "val_accuracy": 0.5,
        "learning_rate": 0.001,
        "duration_seconds": 0.5,
        "samples_per_second": 1000.0,
    }
    metrics.update(overrides)
    return EpochMetrics.model_validate(metrics)


def list_checkpoint(engine: Engine, *, lease: queue.Lease, checkpoint: CheckpointFile) -> list[str] | None:
    """Record the checkpoint's epoch with it, as a worker does; what record_epoch returns."""
    metrics = epoch_metrics(checkpoint.epoch)
    return queue.record_epoch(engine, lease=lease, metrics=metrics, progress=0.5, checkpoint=checkpoint)
