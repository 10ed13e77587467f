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
import math
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

from app import queue
from app.artifacts import attempt_dir, job_dir, remove_stale_files
from app.logs import log_path
from app.queue import Lease
from app.settings import Settings
from worker.entry import training_process_main
from worker.remote import ApiFailure, ApiFiles, StaleAttempt, file_sha256
from worker.task import LEASE_EXPIRED_EXIT_CODE, LeaseRenewed, Stop, TrainingTask

logger = logging.getLogger(__name__)

POLL_S = 0.2
HOLD_CHECK_INTERVAL_S = 1.0
PROGRESS_WRITE_INTERVAL_S = 1.0
# An epoch's row waits this long for the checkpoint written at its end, to go in the same transaction.
EPOCH_WAIT_FOR_CHECKPOINT_S = 0.5
CHILD_EXIT_GRACE_S = 30.0
# A worker on another host sends its log to the API this often (when it grew), and once at the end.
LOG_UPLOAD_INTERVAL_S = 5.0

Ending = Literal["reported", "lost", "timeout", "vanished", "failed"]


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
        self._clock = _Clock(
            earlier_s=lease.runtime_seconds, limit_s=lease.max_runtime_seconds, started=time.monotonic()
        )
        self._last_progress_write = 0.0
        self._pending_epoch: dict[str, Any] | None = None
        self._pending_since = 0.0
        self._conn: Connection | None = None
        # Without a shared folder (TRAINQ_API_URL), files travel to and from the API.
        self._remote = ApiFiles.connect(settings.api_url, settings.api_key) if settings.api_url else None
        self._failure: tuple[str, str] | None = None
        self._log_uploaded_size = 0

    def run(self) -> None:
        try:
            self._run()
        finally:
            if self._remote is not None:
                self._upload_log()
                # What this attempt wrote is on the API now; other attempts' folders are theirs.
                shutil.rmtree(self._own_dir, ignore_errors=True)
                log_path(self._job_dir, self._lease.attempt).unlink(missing_ok=True)
                self._remote.close()

    def _run(self) -> None:
        self._remove_stale_files()
        lease = self._lease
        try:
            resume_from = self._resume_file()
        except StaleAttempt:
            self._lost()
            return
        except ApiFailure as exc:
            self._fail(exc.reason, str(exc))
            return
        task = TrainingTask(
            job_id=lease.job_id,
            attempt=lease.attempt,
            hyperparameters=lease.hyperparameters,
            data_dir=str(self._settings.data_dir.resolve()),
            job_dir=str(self._job_dir),
            checkpoint_dir=str(self._own_dir),
            resume_from=str(resume_from) if resume_from else None,
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
        self._conn = conn
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
        elif ending == "failed" and self._failure is not None:
            self._fail(*self._failure)

    def _resume_file(self) -> Path | None:
        """Where the training process resumes from: in the shared folder, or fetched from the API."""
        lease = self._lease
        if lease.resume_file is None:
            return None
        shared = self._job_dir / lease.resume_file
        if self._remote is None:
            return shared
        # Fetched into this attempt's own folder: another worker of this host may resume the same file.
        local = self._own_dir / ("resume-" + shared.name)
        with self._keeping_lease() as lost:
            self._remote.download(
                job_id=lease.job_id, relative_name=lease.resume_file, sha256=lease.resume_sha256, into=local
            )
        if lost.is_set():
            raise StaleAttempt("the lease was lost while the resume checkpoint downloaded")
        return local

    def _relay(self, conn: Connection) -> Ending:
        """Relay events to the queue until the job ends."""
        lease_s = self._settings.lease_seconds
        next_heartbeat = time.monotonic() + lease_s / 4
        next_hold_check = time.monotonic() + HOLD_CHECK_INTERVAL_S
        # Only a worker without the shared folder sends its log.
        next_log_upload = time.monotonic() + LOG_UPLOAD_INTERVAL_S if self._remote else math.inf
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
                try:
                    keep_going = self._handle(message)
                except ApiFailure as exc:
                    self._failure = (exc.reason, str(exc))
                    return "failed"
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
                if not self._renew():
                    return self._lost()
            elif now >= next_log_upload:
                next_log_upload = now + LOG_UPLOAD_INTERVAL_S
                self._upload_log()
            elif now >= next_hold_check:
                next_hold_check = now + HOLD_CHECK_INTERVAL_S
                if not queue.holds(self._engine, lease=self._lease):
                    return self._lost()

    def _renew(self) -> bool:
        """Heartbeat; on success, tell the training process its new deadline. False if the lease is lost."""
        lease_s = self._settings.lease_seconds
        # The database's new expiry is at least this far from a moment after `now`.
        now = time.monotonic()
        if not queue.heartbeat(
            self._engine, lease=self._lease, lease_seconds=lease_s, runtime_seconds=self._clock.runtime_s()
        ):
            return False
        self._lease_deadline = now + lease_s
        if self._conn is not None:
            _send(self._conn, LeaseRenewed(deadline=self._lease_deadline))
        return True

    @contextlib.contextmanager
    def _keeping_lease(self) -> Iterator[threading.Event]:
        """Renew the lease from a thread while the relay waits for a transfer to or from the API;
        the event is set if the lease was lost meanwhile."""
        lost, done = threading.Event(), threading.Event()

        def renew() -> None:
            while not done.wait(self._settings.lease_seconds / 4):
                if not self._renew():
                    lost.set()
                    return

        renewer = threading.Thread(target=renew, name=f"lease-{self._lease.job_id[:8]}", daemon=True)
        renewer.start()
        try:
            yield lost
        finally:
            done.set()
            renewer.join()

    def _upload(self, path: Path, sha256: str) -> bool:
        """Send one of this attempt's checkpoint files to the API; False if the lease is lost."""
        assert self._remote is not None
        try:
            with self._keeping_lease() as lost:
                self._remote.upload_checkpoint(
                    job_id=self._lease.job_id, attempt=self._lease.attempt, path=path, sha256=sha256
                )
        except StaleAttempt:
            return False
        return not lost.is_set()

    def _upload_log(self, *, force: bool = False) -> None:
        """Send the log if it grew (`force`: even if not; the API then also removes this attempt's
        checkpoints that rows stopped listing). Best effort: a log that cannot be sent costs the
        user lines, never the job."""
        assert self._remote is not None
        path = log_path(self._job_dir, self._lease.attempt)
        size = path.stat().st_size if path.is_file() else 0
        if size == self._log_uploaded_size and not force:
            return
        try:
            self._remote.upload_log(job_id=self._lease.job_id, attempt=self._lease.attempt, path=path)
        except (StaleAttempt, ApiFailure) as exc:
            logger.warning("job %s: the training log was not sent to the API: %s", self._lease.job_id, exc)
            return
        self._log_uploaded_size = size

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
        if event in {"done", "failed"} and self._remote is not None:
            # Before the job ends: once another attempt holds it, this one's log is refused.
            self._upload_log(force=True)
        if event == "done":
            runtime_s = self._clock.runtime_s()
            if message["status"] == "interrupted":
                resume_file: str | None = message["resume_file"]
                resume_sha256 = None
                if resume_file is not None:
                    # Also from a shared folder: a worker on another host may resume the job.
                    resume_sha256 = file_sha256(self._job_dir / resume_file)
                    if self._remote is not None and not self._upload(
                        self._job_dir / resume_file, resume_sha256
                    ):
                        return False
                queue.release(
                    engine,
                    lease=lease,
                    resume_file=resume_file,
                    resume_sha256=resume_sha256,
                    runtime_seconds=runtime_s,
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
        # Listed only once the API holds it whole: the row below is written after the upload.
        if self._remote is not None and not self._upload(
            self._job_dir / checkpoint.file_name, checkpoint.sha256
        ):
            return False
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
