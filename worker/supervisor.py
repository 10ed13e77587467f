"""One job's life: start its training process, relay its events to the queue, stop it.

The supervisor, not the training process, holds the job's lease: it renews it
every quarter of TRAINQ_LEASE_SECONDS however long a batch takes, checks every
second that the job was not cancelled or taken back, and enforces the job's
time limit. Whenever the lease is gone, the training process is killed at once.
Should the supervisor itself stall (SIGSTOP, a hung database call), the training
process knows the lease's deadline, which each renewal moves on, and exits by
itself once it passes: by then another worker may have taken the job.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any, Literal

from sqlalchemy import Engine

from app import queue
from app.artifacts import attempt_dir, job_dir, remove_stale_files
from app.logs import log_path
from app.queue import Lease
from app.settings import Settings
from worker.entry import training_process_main
from worker.task import LEASE_EXPIRED_EXIT_CODE, LeaseRenewed, Stop, TrainingTask

logger = logging.getLogger(__name__)

POLL_S = 0.2
HOLD_CHECK_INTERVAL_S = 1.0
PROGRESS_WRITE_INTERVAL_S = 1.0
# An epoch's row waits this long for the checkpoint written at its end, to go in the same transaction.
EPOCH_WAIT_FOR_CHECKPOINT_S = 0.5
CHILD_EXIT_GRACE_S = 30.0

Ending = Literal["reported", "lost", "timeout", "vanished"]


@dataclass
class _Clock:
    """Training time of this attempt, on top of what earlier attempts used."""

    earlier_s: float
    limit_s: float | None
    started: float = 0.0

    def runtime_s(self) -> float:
        return self.earlier_s + time.monotonic() - self.started

    def expired(self) -> bool:
        return self.limit_s is not None and self.runtime_s() >= self.limit_s


class JobSupervisor:
    """Runs one claimed job to its end; every write it makes is fenced by the lease."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        lease: Lease,
        lease_deadline: float,
        stop: threading.Event,
        mp: BaseContext,
    ) -> None:
        """`lease_deadline`: time.monotonic() by which the claim's lease runs out (taken before the claim)."""
        self._engine = engine
        self._settings = settings
        self._lease = lease
        self._lease_deadline = lease_deadline
        self._stop = stop
        self._mp = mp
        self._job_dir = job_dir(settings.artifacts_dir, lease.job_id).resolve()
        self._own_dir = attempt_dir(self._job_dir, lease.attempt)
        self._clock = _Clock(earlier_s=lease.runtime_seconds, limit_s=lease.max_runtime_seconds)
        self._last_progress_write = 0.0
        self._pending_epoch: dict[str, Any] | None = None
        self._pending_since = 0.0

    def run(self) -> None:
        self._remove_stale_files()
        lease = self._lease
        task = TrainingTask(
            job_id=lease.job_id,
            attempt=lease.attempt,
            hyperparameters=lease.hyperparameters,
            data_dir=str(self._settings.data_dir.resolve()),
            job_dir=str(self._job_dir),
            checkpoint_dir=str(self._own_dir),
            resume_from=str(self._job_dir / lease.resume_file) if lease.resume_file else None,
            log_file=str(log_path(self._job_dir, lease.attempt)),
            max_log_bytes=self._settings.max_log_bytes,
            lease_deadline=self._lease_deadline,
        )
        conn, child_conn = self._mp.Pipe(duplex=True)
        process = self._mp.Process(  # type: ignore[attr-defined]
            target=training_process_main, args=(child_conn, task), name=f"trainq-job-{lease.job_id}"
        )
        self._clock.started = time.monotonic()
        process.start()
        child_conn.close()
        logger.info(
            "job %s: training process %d started (resume from %s)",
            lease.job_id,
            process.pid,
            task.resume_from,
        )
        ending: Ending | None = None
        try:
            ending = self._relay(conn)
        finally:
            conn.close()
            # A process that reported its end is exiting anyway; any other must stop now.
            process.join(CHILD_EXIT_GRACE_S if ending == "reported" else 0)
            if process.is_alive():
                process.kill()
            process.join()
            # A checkpoint being written when the process was killed never got its final name.
            for partial in self._own_dir.glob(".*.tmp"):
                partial.unlink(missing_ok=True)
            self._remove_stale_files()
        if ending == "timeout":
            self._fail(
                "timeout",
                f"the job used up max_runtime_seconds={self._lease.max_runtime_seconds:g}; "
                "its checkpoints are kept",
            )
        elif ending == "vanished":
            self._fail(*_death_reason(process.exitcode))

    def _relay(self, conn: Connection) -> Ending:
        """Relay events to the queue until the job ends."""
        lease_s = self._settings.lease_seconds
        next_heartbeat = time.monotonic() + lease_s / 4
        next_hold_check = time.monotonic() + HOLD_CHECK_INTERVAL_S
        stop_sent = False
        while True:
            if self._stop.is_set() and not stop_sent:
                logger.info("job %s: asking the training process to stop and checkpoint", self._lease.job_id)
                stop_sent = True
                _send(conn, Stop())
            if conn.poll(POLL_S):
                try:
                    message = conn.recv()
                except EOFError:
                    self._flush_epoch()
                    return "vanished"
                keep_going = self._handle(message)
                if keep_going is None:
                    return "reported"
                if not keep_going:
                    return self._lost()
            now = time.monotonic()
            waited_s = now - self._pending_since
            if self._pending_epoch and waited_s >= EPOCH_WAIT_FOR_CHECKPOINT_S and not self._flush_epoch():
                return self._lost()
            if self._clock.expired():
                return "timeout"
            if now >= next_heartbeat:
                next_heartbeat = now + lease_s / 4
                # The database's new expiry is at least this far from a moment after `now`.
                if not queue.heartbeat(
                    self._engine,
                    lease=self._lease,
                    lease_seconds=lease_s,
                    runtime_seconds=self._clock.runtime_s(),
                ):
                    return self._lost()
                _send(conn, LeaseRenewed(deadline=now + lease_s))
            elif now >= next_hold_check:
                next_hold_check = now + HOLD_CHECK_INTERVAL_S
                if not queue.holds(self._engine, lease=self._lease):
                    return self._lost()

    def _handle(self, message: dict[str, Any]) -> bool | None:
        """Apply one event: True to go on, False when the lease is lost, None when the job ended."""
        lease, engine = self._lease, self._engine
        event = message["event"]
        if event == "epoch":
            if not self._flush_epoch():
                return False
            self._pending_epoch, self._pending_since = message, time.monotonic()
            return True
        if event == "checkpoint":
            return self._record_checkpoint(message)
        if not self._flush_epoch():
            return False
        if event == "start":
            return queue.record_start(
                engine, lease=lease, device=message["device"], precision=message["precision"]
            )
        if event == "progress":
            now = time.monotonic()
            if now - self._last_progress_write < PROGRESS_WRITE_INTERVAL_S:
                return True
            self._last_progress_write = now
            return queue.record_progress(
                engine, lease=lease, epoch=message["epoch"], progress=message["fraction"]
            )
        if event == "done":
            runtime_s = self._clock.runtime_s()
            if message["status"] == "interrupted":
                queue.release(
                    engine, lease=lease, resume_file=message["resume_file"], runtime_seconds=runtime_s
                )
            else:
                queue.succeed(engine, lease=lease, runtime_seconds=runtime_s)
            return None
        if event == "failed":
            self._fail(message["reason"], message["message"])
            return None
        raise ValueError(f"unknown event from the training process: {event!r}")

    def _flush_epoch(self, checkpoint: queue.CheckpointFile | None = None) -> bool:
        """Write the pending epoch (with the checkpoint of that epoch, when given); False if the lease is lost."""
        pending, self._pending_epoch = self._pending_epoch, None
        if pending is None:
            return True
        unneeded = queue.record_epoch(
            self._engine,
            lease=self._lease,
            metrics=pending["metrics"],
            progress=pending["fraction"],
            checkpoint=checkpoint,
        )
        return self._delete_unneeded(unneeded, checkpoint)

    def _record_checkpoint(self, message: dict[str, Any]) -> bool:
        checkpoint = queue.CheckpointFile(
            epoch=message["epoch"],
            file_name=message["file_name"],
            size_bytes=message["size_bytes"],
            sha256=message["sha256"],
            is_best=message["is_best"],
        )
        pending = self._pending_epoch
        if pending is not None and pending["metrics"]["epoch"] == checkpoint.epoch:
            return self._flush_epoch(checkpoint)
        if not self._flush_epoch():
            return False
        unneeded = queue.record_checkpoint(self._engine, lease=self._lease, checkpoint=checkpoint)
        return self._delete_unneeded(unneeded, checkpoint)

    def _delete_unneeded(self, unneeded: list[str] | None, checkpoint: queue.CheckpointFile | None) -> bool:
        if unneeded is None:
            if checkpoint is not None:
                (self._job_dir / checkpoint.file_name).unlink(missing_ok=True)
            return False
        # Files are deleted only after they stopped being listed: nothing listed is ever missing.
        for name in unneeded:
            (self._job_dir / name).unlink(missing_ok=True)
        return True

    def _fail(self, reason: str, message: str) -> None:
        queue.fail(
            self._engine,
            lease=self._lease,
            reason=reason,
            message=message,
            runtime_seconds=self._clock.runtime_s(),
        )

    def _lost(self) -> Ending:
        logger.warning(
            "job %s: lease lost (cancelled, taken back or ended elsewhere); stopping its training",
            self._lease.job_id,
        )
        return "lost"

    def _remove_stale_files(self) -> None:
        removed = remove_stale_files(
            self._job_dir, attempt=self._lease.attempt, listed=self._lease.listed_files
        )
        if removed:
            logger.info(
                "job %s: removed %d files that earlier attempts left unlisted",
                self._lease.job_id,
                len(removed),
            )


def _send(conn: Connection, message: Stop | LeaseRenewed) -> None:
    # A training process that is gone cannot take it: the relay reads the pipe's end next.
    with contextlib.suppress(OSError):
        conn.send(message)


def _death_reason(exitcode: int | None) -> tuple[str, str]:
    """Why a training process ended without reporting, as (reason, message)."""
    if exitcode == LEASE_EXPIRED_EXIT_CODE:
        return (
            "worker_lost",
            "the worker did not renew the job's lease in time (it stalled, or its database did not "
            "answer), so the training process stopped itself before another worker could take the job",
        )
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        if -exitcode == signal.SIGKILL:
            return (
                "out_of_memory",
                "the training process was killed by SIGKILL, most often the kernel's out-of-memory "
                "killer: lower batch_size or image_size, or give the worker more memory",
            )
        return "training_error", f"the training process was killed by {name}"
    return "training_error", f"the training process exited with code {exitcode} without reporting a result"
