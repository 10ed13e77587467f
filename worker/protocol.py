"""The seam between the supervisor and its training process: the task handed down once, and
the typed messages that cross the pipe. Light on purpose (no torch): both sides import it.

Down the pipe go Stop and LeaseRenewed. Up come Started, then any number of Progress and
EpochEnded, then exactly one of Finished or Failed as the process's last message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from app.contract import (
    CheckpointFile,
    CpuThreads,
    DatasetInfo,
    EpochMetrics,
    FailureReason,
    RunResults,
    WarmStart,
)

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
    # Intra-op and inter-op threads for the process (each rank): its share of the host's CPUs
    # (worker/cpu_share.py), taken by the worker at the claim.
    cpu_threads: int
    # The checkpoint whose weights hyperparameters.init_from starts from, on this machine (None
    # without init_from, and on a resume: resume_from holds everything).
    init_file: str | None = None


@dataclass(frozen=True)
class Stop:
    """Finish the batch, write a resume checkpoint, and report the run as interrupted."""


@dataclass(frozen=True)
class LeaseRenewed:
    """The lease was renewed: it now runs out at this time.monotonic()."""

    deadline: float


@dataclass(frozen=True)
class Started:
    """Training is about to take its first batch, on this device and precision."""

    device: str  # "cpu", "cuda:0": what is actually used
    precision: str  # "fp32" | "bf16" | "fp16": what is actually used
    dataset: DatasetInfo | None = None
    warm_start: WarmStart | None = None  # what init_from loaded, if the job has one
    cpu_threads: CpuThreads | None = None  # what the process's torch uses


@dataclass(frozen=True)
class Progress:
    """How far the run is: `fraction` of all its batches done, 0..1, now in `epoch`."""

    epoch: int
    fraction: float


@dataclass(frozen=True)
class EpochEnded:
    """An epoch finished; its checkpoint (None when it wrote none) is already complete on disk."""

    metrics: EpochMetrics
    fraction: float
    checkpoint: CheckpointFile | None


@dataclass(frozen=True)
class Finished:
    """The run ended by itself (completed, early stopped: `results` says how, and its export
    files are complete on disk) or on Stop ("interrupted"): then `resume_file` names the
    mid-epoch checkpoint to continue from, None when it stopped at an epoch's end, whose
    checkpoint is the latest state."""

    status: Literal["completed", "early_stopped", "interrupted"]
    resume_file: str | None = None
    results: RunResults | None = None  # None only when interrupted


@dataclass(frozen=True)
class Failed:
    """The run failed; the message says what to change, in terms the job's owner knows."""

    reason: FailureReason
    message: str


Report = Started | Progress | EpochEnded | Finished | Failed


class LeaseClock:
    """The attempt's lease deadline on this machine's monotonic clock, moved on by each renewal."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline
