"""Errors the training package raises; each carries the reason code stored on the job."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from app.contract import FailureReason

# No space, a file over the size limit, a quota: the machine's failures, not the job's.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


class TrainingError(Exception):
    """A training run failed in a way worth telling the job's owner about."""

    reason: FailureReason = FailureReason.training_error


class ConfigError(TrainingError):
    """The hyperparameters ask for something this machine cannot do."""

    reason = FailureReason.invalid_config


class DataError(TrainingError):
    """The dataset is missing, unreadable or outside the data folder."""

    reason = FailureReason.data_error


class NonFiniteLossError(TrainingError):
    """Training diverged: a loss became NaN or infinite."""

    reason = FailureReason.nan_loss


class CheckpointError(TrainingError):
    """A checkpoint file cannot be read back or does not fit the job."""

    reason = FailureReason.checkpoint_error


class ExportError(TrainingError):
    """An exported file does not compute what the trained model computes."""


class DiskFullError(TrainingError):
    """A write failed for want of disk space: the machine's failure, retried like a lost worker."""

    reason = FailureReason.disk_full

    def __init__(self, folder: Path | None, cause: OSError) -> None:
        if folder is None and cause.filename is not None:
            folder = Path(os.fsdecode(cause.filename)).parent
        where = "the disk"
        if folder is not None:
            try:
                free = f"{shutil.disk_usage(folder).free / 1024**2:.1f} MiB free"
            except OSError:
                free = "free space unknown"
            where = f"the disk that holds {folder} ({free})"
        super().__init__(
            f"{where} is full ({cause.strerror or cause}): free some space on it, "
            "or move the folder to a larger disk"
        )


def disk_full_error(exc: BaseException, folder: Path | None = None) -> DiskFullError | None:
    """A DiskFullError when `exc` or what caused it (libraries wrap OSError, torch's writer
    in a RuntimeError) is a disk-full OSError; None otherwise."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in DISK_FULL_ERRNOS:
            return DiskFullError(folder, cause)
        cause = cause.__cause__ or cause.__context__
    return None
