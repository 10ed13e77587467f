"""The training log of an attempt: one file per attempt, capped, and closed to a stale attempt."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

from worker.protocol import LeaseClock, TrainingTask

logger = logging.getLogger(__name__)


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
            assert self.stream is not None  # closed only once the handler is off
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
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()  # the unwritten buffer cannot be written; the file is closed all the same


def log_to(task: TrainingTask, lease: LeaseClock) -> None:
    """Send this process's log records to stderr and to the attempt's capped log file."""
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
