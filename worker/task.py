"""What the supervisor hands its training process, and the messages it sends down the pipe.

Light on purpose (no torch): the worker imports it, and so does the training process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# How a training process that exits by itself says why (other exit codes are crashes).
PARENT_GONE_EXIT_CODE = 70
LEASE_EXPIRED_EXIT_CODE = 71


@dataclass(frozen=True)
class TrainingTask:
    """One attempt of one job, as the training process needs it."""

    job_id: str
    attempt: int
    hyperparameters: dict[str, Any]
    # Absolute paths: failure messages name these folders by their settings, not by this machine's paths.
    data_dir: str
    job_dir: str  # TRAINQ_ARTIFACTS_DIR/<job id>; checkpoint file names are reported relative to it
    checkpoint_dir: str  # this attempt's own folder inside job_dir
    resume_from: str | None  # a checkpoint an earlier attempt left, to continue from
    log_file: str
    max_log_bytes: int
    # time.monotonic() at which the attempt's lease runs out unless renewed: the training process
    # exits by itself once it passes, so it never outlives a lease that another worker may take.
    lease_deadline: float


@dataclass(frozen=True)
class Stop:
    """Finish the batch, write a resume checkpoint, and report the run as interrupted."""


@dataclass(frozen=True)
class LeaseRenewed:
    """The lease was renewed: it now runs out at this time.monotonic()."""

    deadline: float
