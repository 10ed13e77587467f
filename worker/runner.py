"""The training process: runs one job's training loop and reports events to its supervisor.

It talks only through its end of a pipe. Events go up; down come Stop (finish the
batch, hand the job back) and LeaseRenewed. This process exits at once, so that it
never keeps a GPU busy or writes beside another attempt, when the pipe closes (the
supervising worker is gone, even by SIGKILL) or when its lease deadline passes
without a renewal (the worker is stalled: SIGSTOP, a hung database call, a paused
machine), and its log stops taking lines from that moment on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from app.hyperparameters import Hyperparameters
from worker.task import (
    LEASE_EXPIRED_EXIT_CODE,
    PARENT_GONE_EXIT_CODE,
    LeaseRenewed,
    Stop,
    TrainingTask,
)
from worker.training import (
    CheckpointInfo,
    EpochMetrics,
    RunInfo,
    TrainingError,
    disk_full_error,
    run_training,
)

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5


class LeaseClock:
    """The attempt's lease deadline on this machine's monotonic clock, moved on by each renewal."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline


class PipeCallbacks:
    """Sends training events up the pipe; progress at most every PROGRESS_INTERVAL_S."""

    def __init__(self, conn: Connection, job_dir: Path) -> None:
        self._conn = conn
        self._job_dir = job_dir
        self._lock = threading.Lock()
        self._last_progress = 0.0
        self._fraction = 0.0
        # Set before the last message goes up: the supervisor may close the pipe as soon as it has it.
        self.finished = threading.Event()

    def send(self, event: str, **payload: Any) -> None:
        with self._lock:
            self._conn.send({"event": event, **payload})

    def finish(self, event: str, **payload: Any) -> None:
        self.finished.set()
        self.send(event, **payload)

    def on_start(self, info: RunInfo) -> None:
        self.send("start", **asdict(info))

    def on_progress(self, epoch: int, fraction: float) -> None:
        self._fraction = fraction
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.send("progress", epoch=epoch, fraction=fraction)

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        self.send("epoch", metrics=asdict(metrics), fraction=self._fraction)

    def on_checkpoint(self, info: CheckpointInfo) -> None:
        self.send(
            "checkpoint",
            epoch=info.epoch,
            file_name=self.relative_name(info.path),
            size_bytes=info.size_bytes,
            sha256=info.sha256,
            is_best=info.is_best,
        )

    def relative_name(self, path: Path) -> str:
        """A file's name as the job's rows store it: relative to the job's folder."""
        return path.relative_to(self._job_dir).as_posix()


def _watch_parent(
    conn: Connection, stop: threading.Event, lease: LeaseClock, finished: threading.Event
) -> None:
    """Take the supervisor's messages; exit the process when the pipe closes or the lease runs out."""
    try:
        while True:
            remaining_s = lease.deadline - time.monotonic()
            if remaining_s <= 0:
                logger.error("the lease of this attempt ran out without a renewal; training process exits")
                os._exit(LEASE_EXPIRED_EXIT_CODE)
            if not conn.poll(remaining_s):
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


class CappedFileHandler(logging.FileHandler):
    """Writes records until the file holds max_bytes, then one line saying the rest was dropped,
    so that a chatty job cannot fill the disk. Once `lease` has run out, nothing more is written:
    another attempt may be running, and this attempt's log must not change under its readers.
    A write that fails (a full disk) turns the file off after one line on stderr."""

    def __init__(self, path: Path, max_bytes: int, lease: LeaseClock | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(path, mode="a", encoding="utf-8")
        self._room = max_bytes - path.stat().st_size
        self._lease = lease
        self._off = False

    def emit(self, record: logging.LogRecord) -> None:
        if self._off or (self._lease is not None and self._lease.expired()):
            return
        try:
            size = len(self.format(record).encode()) + len(self.terminator)
        except Exception:
            self.handleError(record)
            return
        if size > self._room:
            self._off = True
            self.stream.write(
                f"... log truncated: it reached TRAINQ_MAX_LOG_BYTES; later lines dropped{self.terminator}"
            )
            self.flush()
            return
        self._room -= size
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
            return
        # logging's default prints a traceback per record: on a full disk, one per line logged.
        self._off = True
        sys.stderr.write(f"trainq: training log {self.baseFilename} turned off: {error}\n")
        stream, self.stream = self.stream, None  # type: ignore[assignment]
        with contextlib.suppress(OSError):
            stream.close()  # the unwritten buffer cannot be written; the file is closed all the same


def _log_to(task: TrainingTask, lease: LeaseClock) -> None:
    fmt = logging.Formatter(f"%(asctime)s %(levelname)s [job {task.job_id}] %(name)s: %(message)s")
    handlers: list[logging.Handler] = [
        logging.StreamHandler(),
        CappedFileHandler(Path(task.log_file), task.max_log_bytes, lease),
    ]
    for handler in handlers:
        handler.setFormatter(fmt)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    logging.captureWarnings(True)
    logger.info("attempt %d starts in process %d", task.attempt, os.getpid())


def run_job(conn: Connection, task: TrainingTask) -> None:
    """Entry point of the training process."""
    # Ctrl-C reaches the whole process group; only the worker decides how this process stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    lease = LeaseClock(task.lease_deadline)
    job_dir = Path(task.job_dir).resolve()
    callbacks = PipeCallbacks(conn, job_dir)
    threading.Thread(
        target=_watch_parent, args=(conn, stop, lease, callbacks.finished), daemon=True, name="watch-parent"
    ).start()
    try:
        _log_to(task, lease)
        hp = Hyperparameters.model_validate(task.hyperparameters)
        outcome = run_training(
            hp,
            data_dir=Path(task.data_dir),
            checkpoint_dir=Path(task.checkpoint_dir),
            callbacks=callbacks,
            resume_from=Path(task.resume_from) if task.resume_from else None,
            should_stop=stop.is_set,
        )
    except Exception as exc:
        reason, message = _failure(exc)
        callbacks.finish("failed", reason=reason, message=_in_trainq_terms(message, task))
    else:
        result = asdict(outcome)
        resume = result.pop("resume_checkpoint", None)
        resume_file = callbacks.relative_name(resume) if resume else None
        callbacks.finish("done", **result, resume_file=resume_file)


def _failure(exc: Exception) -> tuple[str, str]:
    """(reason, message) to store on the job for what ended the run."""
    if isinstance(exc, ValidationError):
        return "invalid_config", f"hyperparameters are not valid: {exc}"
    if isinstance(exc, TrainingError):
        return exc.reason, str(exc)
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return (
            "out_of_memory",
            f"ran out of memory ({type(exc).__name__}); lower batch_size or image_size, or use amp",
        )
    full = disk_full_error(exc)
    if full is not None:
        return full.reason, str(full)
    logger.exception("training failed")
    return "training_error", f"{type(exc).__name__}: {exc}"


def _in_trainq_terms(message: str, task: TrainingTask) -> str:
    """A failure as its owner reads it: the worker's folders named by the settings that set them,
    which mean something to the owner, where this machine's paths do not."""
    folders = {task.data_dir: "TRAINQ_DATA_DIR", str(Path(task.job_dir).parent): "TRAINQ_ARTIFACTS_DIR"}
    for folder in sorted(folders, key=len, reverse=True):
        message = re.sub(re.escape(folder) + r"(?![\w.-])", folders[folder], message)
    return message
