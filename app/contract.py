"""What a training run reports that the service stores, defined once for both sides.

Pure pydantic and the standard library, like app.hyperparameters: the training code and the
training process import it without the database, and app.models builds its tables on it.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FailureReason(enum.StrEnum):
    """Why an attempt failed, as `error.reason` shows it."""

    invalid_config = "invalid_config"  # the hyperparameters ask for what this machine cannot do
    data_error = "data_error"  # the dataset is missing, unreadable or outside the data folder
    out_of_memory = "out_of_memory"  # the process ran out of (GPU) memory, or the kernel killed it
    disk_full = "disk_full"  # a write failed for want of space on the worker or the API
    nan_loss = "nan_loss"  # training diverged: a loss became NaN or infinite
    worker_lost = "worker_lost"  # the worker stopped renewing the lease (crashed, killed, stalled)
    timeout = "timeout"  # the job used up max_runtime_seconds
    checkpoint_error = "checkpoint_error"  # a checkpoint to resume from is unreadable or does not fit
    training_error = "training_error"  # anything else the training code raised
    api_unreachable = "api_unreachable"  # a worker on another host could not reach the API
    api_refused = "api_refused"  # the API refused a worker's key after its start-up check passed

    @property
    def retryable(self) -> bool:
        """A failure of the machine rather than of the job: the job is queued again until
        max_attempts is used up. The others would fail the same way again."""
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {
        FailureReason.worker_lost,
        FailureReason.out_of_memory,
        FailureReason.disk_full,
        FailureReason.api_unreachable,
        FailureReason.api_refused,
    }
)


class EpochMetrics(BaseModel):
    """One finished epoch's numbers: what the loop reports, the pipe carries and a row stores."""

    model_config = ConfigDict(frozen=True)

    epoch: int  # 1-based
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float  # in effect at the start of this epoch's training (onecycle: its first batch)
    duration_seconds: float  # training + validation wall time
    samples_per_second: float  # training samples / training wall time


class CheckpointFile(BaseModel):
    """A complete checkpoint file, named relative to its job's artifacts folder."""

    model_config = ConfigDict(frozen=True)

    epoch: int
    file_name: str
    size_bytes: int
    sha256: str  # hex
    is_best: bool  # its epoch has the best monitored metric so far


class StopReason(enum.StrEnum):
    """Why a job's training ended, as `stop_reason` shows it once the job has ended."""

    completed = "completed"  # every epoch ran
    early_stopping = (
        "early_stopping"  # the monitored metric stopped improving (best_epoch says when it peaked)
    )
    time_limit = "time_limit"  # max_runtime_seconds ran out
    cancelled = "cancelled"  # someone cancelled the job
    nan_loss = "nan_loss"  # a loss became NaN or infinite
    failed = "failed"  # any other failure: error says which

    @classmethod
    def of_failure(cls, reason: FailureReason) -> StopReason:
        return {FailureReason.nan_loss: cls.nan_loss, FailureReason.timeout: cls.time_limit}.get(
            reason, cls.failed
        )


# At most this many skipped file names are kept in dataset_info (the count is always exact).
MAX_SKIPPED_FILES_LISTED = 100


class DatasetInfo(BaseModel):
    """What a job trained on: its classes in index order and the size of each split."""

    model_config = ConfigDict(frozen=True)

    layout: str  # "class_folders", "split_folders" (imagefolder), or the built-in dataset's name
    classes: list[str]  # index order: output i of the model is classes[i]
    train_samples: int
    val_samples: int
    test_samples: int  # 0 without a test split
    skipped_files: list[str] = []  # unreadable images left out (skip_bad_images), relative to the dataset
    skipped_count: int = 0


class ClassMetrics(BaseModel):
    """One class's figures on one split."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)

    class_name: str = Field(alias="class")
    precision: float
    recall: float
    f1: float
    support: int  # samples of this class in the split


class EvaluationMetrics(BaseModel):
    """A model evaluated on one split: `confusion_matrix[i][j]` counts samples of class i predicted as j."""

    model_config = ConfigDict(frozen=True)

    epoch: int  # the epoch whose model was evaluated: the best one
    loss: float
    accuracy: float
    per_class: list[ClassMetrics]
    confusion_matrix: list[list[int]]


ExportFormat = Literal["safetensors", "torchscript", "onnx"]
# Each format's file, in the attempt's folder and as GET /jobs/{id}/exports/{name} names it.
EXPORT_FILE_NAMES: dict[ExportFormat, str] = {
    "safetensors": "model.safetensors",
    "torchscript": "model.pt",
    "onnx": "model.onnx",
}


class ExportFile(BaseModel):
    """A deployable file written from the best epoch at the end of a job, named relative to its job's folder."""

    model_config = ConfigDict(frozen=True)

    name: str  # as GET /jobs/{id}/exports/{name} takes it: "model.safetensors", "model.pt", "model.onnx"
    format: ExportFormat
    file_name: str
    size_bytes: int
    sha256: str  # hex


class CpuThreads(BaseModel):
    """The CPU threads a run's training process (each rank of it) used, as torch had them in effect."""

    model_config = ConfigDict(frozen=True)

    intra_op: int  # torch.get_num_threads(): threads inside one operation (a matmul, a convolution)
    inter_op: int  # torch.get_num_interop_threads(): operations run side by side


class WarmStart(BaseModel):
    """What init_from loaded: the source job and epoch, and the parameters that started fresh."""

    model_config = ConfigDict(frozen=True)

    job: str
    epoch: int
    loaded: int  # tensors taken from the source checkpoint
    new: list[str]  # state-dict keys initialised afresh (a replaced classifier head)


class RunResults(BaseModel):
    """How a run that ended by itself went: why it stopped, its best epoch and that epoch's
    evaluation, and the files exported from it."""

    model_config = ConfigDict(frozen=True)

    stop_reason: StopReason  # completed or early_stopping
    best_epoch: int | None
    val_metrics: EvaluationMetrics | None = None  # the best epoch's model on the validation split
    test_metrics: EvaluationMetrics | None = None  # the same model on the test split, when there is one
    exports: list[ExportFile] = []


class EvalTransform(BaseModel):
    """The deterministic transform validation, test and inference apply to an image: resize the
    shorter side to `resize_size`, center-crop `image_size` square, scale to [0, 1], then
    normalise with `mean`/`std` per channel (none when null). `channels` is 1 (grayscale) or 3 (RGB)."""

    model_config = ConfigDict(frozen=True)

    image_size: int
    resize_size: int
    channels: int
    mean: list[float] | None
    std: list[float] | None
