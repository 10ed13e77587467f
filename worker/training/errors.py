"""Errors the training package raises; each carries the reason code stored on the job."""

from __future__ import annotations


class TrainingError(Exception):
    """A training run failed in a way worth telling the job's owner about."""

    reason: str = "training_error"


class ConfigError(TrainingError):
    """The hyperparameters ask for something this machine cannot do."""

    reason = "invalid_config"


class DataError(TrainingError):
    """The dataset is missing, unreadable or outside the data folder."""

    reason = "data_error"


class NonFiniteLossError(TrainingError):
    """Training diverged: a loss became NaN or infinite."""

    reason = "nan_loss"


class CheckpointError(TrainingError):
    """A checkpoint file cannot be read back or does not fit the job."""

    reason = "checkpoint_error"
