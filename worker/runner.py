"""The training process: runs one job's training loop and reports events to its supervisor.

It talks only through its end of a pipe. Events go up; the only message that
comes down is "stop" (finish the batch, hand the job back). If the pipe closes,
the supervising worker is gone (even by SIGKILL), and this process exits at
once so it never outlives it and keeps a GPU busy.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from app.hyperparameters import Hyperparameters
from worker.training import CheckpointInfo, EpochMetrics, RunInfo, TrainingError, run_training

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5
PARENT_GONE_EXIT_CODE = 70


class PipeCallbacks:
    """Sends training events up the pipe; progress at most every PROGRESS_INTERVAL_S."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._last_progress = 0.0
        self._fraction = 0.0

    def send(self, event: str, **payload: Any) -> None:
        with self._lock:
            self._conn.send({"event": event, **payload})

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
            file_name=info.path.name,
            size_bytes=info.size_bytes,
            sha256=info.sha256,
            is_best=info.is_best,
        )


def _watch_parent(conn: Connection, stop: threading.Event) -> None:
    try:
        while True:
            if conn.recv() == "stop":
                stop.set()
    except (EOFError, OSError):
        logger.error("supervising worker is gone; training process exits")
        os._exit(PARENT_GONE_EXIT_CODE)


class CappedFileHandler(logging.FileHandler):
    """Writes records until the file holds max_bytes, then one line saying the rest was dropped,
    so that a chatty job cannot fill the disk."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(path, mode="a", encoding="utf-8")
        self._room = max_bytes - path.stat().st_size
        self._full = False

    def emit(self, record: logging.LogRecord) -> None:
        if self._full:
            return
        try:
            size = len(self.format(record).encode()) + len(self.terminator)
        except Exception:
            self.handleError(record)
            return
        if size > self._room:
            self._full = True
            self.stream.write(
                f"... log truncated: it reached TRAINQ_MAX_LOG_BYTES; later lines dropped{self.terminator}"
            )
            self.flush()
            return
        self._room -= size
        super().emit(record)


def _log_to(job_id: str, attempt: int, log_file: Path, max_log_bytes: int) -> None:
    fmt = logging.Formatter(f"%(asctime)s %(levelname)s [job {job_id}] %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(), CappedFileHandler(log_file, max_log_bytes)]
    for handler in handlers:
        handler.setFormatter(fmt)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    logging.captureWarnings(True)
    logger.info("attempt %d starts in process %d", attempt, os.getpid())


def run_job(
    conn: Connection,
    job_id: str,
    attempt: int,
    hyperparameters: dict[str, Any],
    data_dir: str,
    checkpoint_dir: str,
    resume_from: str | None,
    log_file: str,
    max_log_bytes: int,
) -> None:
    """Entry point of the training process."""
    _log_to(job_id, attempt, Path(log_file), max_log_bytes)
    # Ctrl-C reaches the whole process group; only the worker decides how this process stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    threading.Thread(target=_watch_parent, args=(conn, stop), daemon=True, name="watch-parent").start()
    callbacks = PipeCallbacks(conn)
    try:
        hp = Hyperparameters.model_validate(hyperparameters)
        outcome = run_training(
            hp,
            data_dir=Path(data_dir),
            checkpoint_dir=Path(checkpoint_dir),
            callbacks=callbacks,
            resume_from=Path(resume_from) if resume_from else None,
            should_stop=stop.is_set,
        )
    except ValidationError as exc:
        callbacks.send("failed", reason="invalid_config", message=f"hyperparameters are not valid: {exc}")
    except TrainingError as exc:
        callbacks.send("failed", reason=exc.reason, message=str(exc))
    except (torch.OutOfMemoryError, MemoryError) as exc:
        callbacks.send(
            "failed",
            reason="out_of_memory",
            message=f"ran out of memory ({type(exc).__name__}); lower batch_size or image_size, or use amp",
        )
    except Exception as exc:
        logger.exception("training failed")
        callbacks.send("failed", reason="training_error", message=f"{type(exc).__name__}: {exc}")
    else:
        result = asdict(outcome)
        resume = result.pop("resume_checkpoint", None)
        callbacks.send("done", **result, resume_file=resume.name if resume else None)
