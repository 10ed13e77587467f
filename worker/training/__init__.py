"""Pure-PyTorch training: data, models, the loop, checkpoints and early stopping.

Imports nothing of the service but `app.hyperparameters`; reports through callbacks.
"""

from .checkpoint import RESUME_FILENAME, checkpoint_filename, load_model
from .early_stopping import EarlyStopping
from .epoch import EpochProgress, evaluate, train_one_epoch
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DiskFullError,
    NonFiniteLossError,
    TrainingError,
    disk_full_error,
)
from .loop import run_training
from .reports import (
    Callbacks,
    CheckpointInfo,
    EpochMetrics,
    NullCallbacks,
    RunInfo,
    TrainingOutcome,
)

__all__ = [
    "RESUME_FILENAME",
    "Callbacks",
    "CheckpointError",
    "CheckpointInfo",
    "ConfigError",
    "DataError",
    "DiskFullError",
    "EarlyStopping",
    "EpochMetrics",
    "EpochProgress",
    "NonFiniteLossError",
    "NullCallbacks",
    "RunInfo",
    "TrainingError",
    "TrainingOutcome",
    "checkpoint_filename",
    "disk_full_error",
    "evaluate",
    "load_model",
    "run_training",
    "train_one_epoch",
]
