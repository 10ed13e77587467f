"""Builders for test data, apart from the tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from app import queue
from app.hyperparameters import Hyperparameters
from app.models import Job, JobCreate


def submit_job(engine: Engine, name: str | None = None, max_attempts: int = 3, **hyperparameters: Any) -> Job:
    job_in = JobCreate(
        name=name, hyperparameters=Hyperparameters(**hyperparameters), max_attempts=max_attempts
    )
    job, created = queue.submit(engine, job_in=job_in)
    assert created
    return job


def epoch_metrics(epoch: int, **overrides: float) -> dict[str, float]:
    metrics = {
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
    return metrics
