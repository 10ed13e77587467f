"""What a training run reports, and the callbacks it reports through."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from app.contract import DatasetInfo, EpochMetrics, EvaluationMetrics, ExportFormat, WarmStart

__all__ = [
    "Callbacks",
    "CheckpointInfo",
    "EpochMetrics",
    "ExportInfo",
    "NullCallbacks",
    "RunInfo",
    "TrainingOutcome",
]


@dataclass(frozen=True)
class RunInfo:
    """Reported once, before the first batch."""

    device: str  # "cpu", "cuda:0": what is actually used
    precision: str  # "fp32" | "bf16" | "fp16": what is actually used
    num_classes: int
    train_samples: int
    val_samples: int
    batches_per_epoch: int
    start_epoch: int  # 1 for a fresh run, else the checkpoint's epoch + 1 (the one a resume file continues)
    dataset: DatasetInfo | None = None
    warm_start: WarmStart | None = None  # what init_from loaded


@dataclass(frozen=True)
class CheckpointInfo:
    epoch: int
    path: Path  # absolute
    size_bytes: int
    sha256: str  # hex
    is_best: bool  # this epoch has the best monitored metric so far


@dataclass(frozen=True)
class ExportInfo:
    name: str  # the file's name, as GET /jobs/{id}/exports/{name} takes it
    format: ExportFormat
    path: Path  # absolute
    size_bytes: int
    sha256: str  # hex


@dataclass(frozen=True)
class TrainingOutcome:
    status: Literal["completed", "early_stopped", "interrupted"]
    epochs_completed: int  # the last epoch finished
    stop_reason: str | None  # why it stopped early, for people
    best_epoch: int | None
    best_metric: float | None
    # Absolute path of the resume checkpoint a mid-epoch stop wrote (status "interrupted" only);
    # None when the run stopped at an epoch's end, whose epoch checkpoint is then the latest state.
    resume_checkpoint: Path | None = None
    # A run that ended by itself: its best epoch's model on the validation and test splits,
    # and the files exported from it.
    val_metrics: EvaluationMetrics | None = None
    test_metrics: EvaluationMetrics | None = None
    exports: tuple[ExportInfo, ...] = ()


class Callbacks(Protocol):
    def on_start(self, info: RunInfo) -> None: ...

    def on_progress(self, epoch: int, fraction: float) -> None:
        """After every training batch; `fraction` of all the run's batches done, 0..1. Must be cheap."""

    def on_epoch_end(self, metrics: EpochMetrics, checkpoint: CheckpointInfo | None) -> None:
        """After each epoch, with the checkpoint written at its end (None when none was)."""


class NullCallbacks:
    """Callbacks that ignore everything; subclass and override what you need."""

    def on_start(self, info: RunInfo) -> None:
        pass

    def on_progress(self, epoch: int, fraction: float) -> None:
        pass

    def on_epoch_end(self, metrics: EpochMetrics, checkpoint: CheckpointInfo | None) -> None:
        pass
