"""The training process: runs one job's training loop and reports events to its supervisor.

It talks only through its end of a pipe. Events go up; down come Stop (finish the
batch, hand the job back) and LeaseRenewed. This process exits at once, so that it
never keeps a GPU busy or writes beside another attempt, when the pipe closes (the
supervising worker is gone, even by SIGKILL) or when its lease deadline passes
without a renewal (the worker is stalled: SIGSTOP, a hung database call, a paused
machine), and its log stops taking lines from that moment on.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import torch
from pydantic import ValidationError

from app.contract import (
    CheckpointFile,
    CpuThreads,
    EpochMetrics,
    ExportFile,
    FailureReason,
    RunResults,
    StopReason,
)
from app.hyperparameters import Hyperparameters
from worker.orphans import ATTEMPT_ENV, JOB_ID_ENV, name_process
from worker.protocol import (
    LEASE_EXPIRED_EXIT_CODE,
    PARENT_GONE_EXIT_CODE,
    EpochEnded,
    Failed,
    Finished,
    LeaseClock,
    LeaseRenewed,
    Progress,
    Report,
    Started,
    Stop,
    TrainingTask,
)
from worker.training import (
    CheckpointInfo,
    NullCallbacks,
    RunInfo,
    TrainingError,
    TrainingOutcome,
    disk_full_error,
    run_training,
)
from worker.training.cpu_threads import use_cpu_threads
from worker.training.distributed import ONE_RANK, Ranks
from worker.training.loader_workers import keep_from_workers
from worker.training_log import log_to

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5


class PipeCallbacks:
    """Turns the loop's callbacks into protocol messages up the pipe; progress at most every
    PROGRESS_INTERVAL_S."""

    def __init__(self, conn: Connection, job_dir: Path, cpu_threads: CpuThreads) -> None:
        self._conn = conn
        # DataLoader workers are forked from this process: held by them too, the pipe would not
        # tell the supervisor that this process died until they noticed and exited.
        keep_from_workers(conn)
        self._job_dir = job_dir
        self._cpu_threads = cpu_threads
        self._lock = threading.Lock()
        self._last_progress = 0.0
        self._fraction = 0.0
        # Set before the last message goes up: the supervisor may close the pipe as soon as it has it.
        self.finished = threading.Event()

    def send(self, report: Report) -> None:
        with self._lock:
            self._conn.send(report)

    def finish(self, report: Finished | Failed) -> None:
        self.finished.set()
        self.send(report)

    def on_start(self, info: RunInfo) -> None:
        self.send(
            Started(
                device=info.device,
                precision=info.precision,
                dataset=info.dataset,
                warm_start=info.warm_start,
                cpu_threads=self._cpu_threads,
            )
        )

    def on_progress(self, epoch: int, fraction: float) -> None:
        self._fraction = fraction
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.send(Progress(epoch=epoch, fraction=fraction))

    def on_epoch_end(self, metrics: EpochMetrics, checkpoint: CheckpointInfo | None) -> None:
        listed = None
        if checkpoint is not None:
            listed = CheckpointFile(
                epoch=checkpoint.epoch,
                file_name=self.relative_name(checkpoint.path),
                size_bytes=checkpoint.size_bytes,
                sha256=checkpoint.sha256,
                is_best=checkpoint.is_best,
            )
        self.send(EpochEnded(metrics=metrics, fraction=self._fraction, checkpoint=listed))

    def results(self, outcome: TrainingOutcome) -> RunResults:
        """A run that ended by itself, as the job stores it."""
        exports = [
            ExportFile(
                name=export.name,
                format=export.format,
                file_name=self.relative_name(export.path),
                size_bytes=export.size_bytes,
                sha256=export.sha256,
            )
            for export in outcome.exports
        ]
        return RunResults(
            stop_reason=StopReason.early_stopping
            if outcome.status == "early_stopped"
            else StopReason.completed,
            best_epoch=outcome.best_epoch,
            val_metrics=outcome.val_metrics,
            test_metrics=outcome.test_metrics,
            exports=exports,
        )

    def relative_name(self, path: Path) -> str:
        """A file's name as the job's rows store it: relative to the job's folder."""
        return path.relative_to(self._job_dir).as_posix()


def _watch_parent(
    conn: Connection,
    stop: threading.Event,
    lease: LeaseClock,
    finished: threading.Event,
    on_lease_expired: Callable[[], None] = lambda: None,
) -> None:
    """Take the supervisor's messages; exit the process when the pipe closes or the lease runs out
    (calling `on_lease_expired` first)."""
    try:
        while True:
            remaining_s = lease.deadline - time.monotonic()
            # A renewal already waiting in the pipe counts (one sent while the process started up).
            if remaining_s <= 0 and not conn.poll(0):
                logger.error("the lease of this attempt ran out without a renewal; training process exits")
                on_lease_expired()
                os._exit(LEASE_EXPIRED_EXIT_CODE)
            if not conn.poll(max(remaining_s, 0)):
                continue
            match conn.recv():
                case Stop():
                    stop.set()
                case LeaseRenewed(deadline=deadline):
                    lease.deadline = deadline
    except (EOFError, OSError):
        if finished.is_set():
            return  # the supervisor has the result and hung up first: this process is exiting anyway
        logger.error("supervising worker is gone; training process exits")
        os._exit(PARENT_GONE_EXIT_CODE)


def run_job(
    conn: Connection,
    task: TrainingTask,
    ranks: Ranks = ONE_RANK,
    on_lease_expired: Callable[[], None] = lambda: None,
) -> Failed | None:
    """Entry point of the training process: the only one of a one-device job, or rank 0 of
    several. Returns the failure it reported, if any."""
    cpu_threads = use_cpu_threads(task.cpu_threads)  # first: before torch's thread pools start
    # Ctrl-C reaches the whole process group; only the worker decides how this process stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # For the job's own code and what it starts (under torchrun they are already there).
    os.environ[JOB_ID_ENV], os.environ[ATTEMPT_ENV] = task.job_id, str(task.attempt)
    name_process(task.job_id)
    stop = threading.Event()
    lease = LeaseClock(task.lease_deadline)
    job_dir = Path(task.job_dir).resolve()
    callbacks = PipeCallbacks(conn, job_dir, cpu_threads)
    threading.Thread(
        target=_watch_parent,
        args=(conn, stop, lease, callbacks.finished, on_lease_expired),
        daemon=True,
        name="watch-parent",
    ).start()
    try:
        log_to(task, lease)
        outcome = run_training(
            Hyperparameters.model_validate(task.hyperparameters),
            data_dir=Path(task.data_dir),
            checkpoint_dir=Path(task.checkpoint_dir),
            callbacks=callbacks,
            resume_from=Path(task.resume_from) if task.resume_from else None,
            init_from=Path(task.init_file) if task.init_file else None,
            should_stop=stop.is_set,
            ranks=ranks,
        )
    except Exception as exc:
        failure = failure_of(exc, task)
        callbacks.finish(failure)
        return failure
    if outcome.status == "interrupted":
        resume = outcome.resume_checkpoint
        resume_file = callbacks.relative_name(resume) if resume else None
        callbacks.finish(Finished(status=outcome.status, resume_file=resume_file))
    else:
        callbacks.finish(Finished(status=outcome.status, results=callbacks.results(outcome)))
    return None


def run_other_rank(task: TrainingTask, ranks: Ranks) -> Failed | None:
    """A rank other than 0 of a multi-device job: trains its shard, reports nothing (rank 0
    does), and returns what failed it, if anything. Its log lines go to stderr (torchrun's)."""
    use_cpu_threads(task.cpu_threads)  # first: before torch's thread pools start
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    name_process(task.job_id)
    fmt = f"%(asctime)s %(levelname)s [job {task.job_id} rank {ranks.rank}] %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt, force=True)
    try:
        run_training(
            Hyperparameters.model_validate(task.hyperparameters),
            data_dir=Path(task.data_dir),
            checkpoint_dir=Path(task.checkpoint_dir),
            callbacks=NullCallbacks(),
            resume_from=Path(task.resume_from) if task.resume_from else None,
            init_from=Path(task.init_file) if task.init_file else None,
            ranks=ranks,
        )
    except Exception as exc:
        return failure_of(exc, task)
    return None


def failure_of(exc: Exception, task: TrainingTask) -> Failed:
    """What to store on the job for the exception that ended the run."""
    reason, message = _failure(exc)
    return Failed(reason=reason, message=_in_trainq_terms(message, task))


def _failure(exc: Exception) -> tuple[FailureReason, str]:
    """(reason, message) to store on the job for what ended the run."""
    if isinstance(exc, ValidationError):
        return FailureReason.invalid_config, f"hyperparameters are not valid: {exc}"
    if isinstance(exc, TrainingError):
        return exc.reason, str(exc)
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return (
            FailureReason.out_of_memory,
            f"ran out of memory ({type(exc).__name__}); lower batch_size or image_size, or use amp",
        )
    full = disk_full_error(exc)
    if full is not None:
        return full.reason, str(full)
    logger.exception("training failed")
    return FailureReason.training_error, f"{type(exc).__name__}: {exc}"


def _in_trainq_terms(message: str, task: TrainingTask) -> str:
    """A failure as its owner reads it: the worker's folders named by the settings that set them,
    which mean something to the owner, where this machine's paths do not."""
    folders = {task.data_dir: "TRAINQ_DATA_DIR", str(Path(task.job_dir).parent): "TRAINQ_ARTIFACTS_DIR"}
    for folder in sorted(folders, key=len, reverse=True):
        message = re.sub(re.escape(folder) + r"(?![\w.-])", folders[folder], message)
    return message
