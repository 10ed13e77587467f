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

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine

from app import queue
from app.artifacts import attempt_dir, job_dir, log_path, remove_job_folder, remove_stale_files
from app.contract import CheckpointFile, FailureReason, RunResults
from app.queue import Lease
from app.settings import Settings
from worker.entry import training_process_main
from worker.init_checkpoint import SourceCheckpointGone, init_checkpoint
from worker.launch import ForkedProcess, TorchrunProcess, TrainingProcess, pinned_gpus
from worker.protocol import (
    EpochEnded,
    Failed,
    Finished,
    LeaseRenewed,
    Progress,
    Report,
    Started,
    Stop,
    TrainingTask,
)
from worker.remote import ApiFailure, ApiFiles, StaleAttempt, file_sha256
from worker.transfers import AttemptTransfers

logger = logging.getLogger(__name__)

POLL_S = 0.2
HOLD_CHECK_INTERVAL_S = 1.0
PROGRESS_WRITE_INTERVAL_S = 1.0
# A worker on another host sends its log to the API this often (when it grew), and once at the end.
LOG_UPLOAD_INTERVAL_S = 5.0

# How the relay ended: the process reported its end, the lease was lost, the time limit passed,
# the process died without a report, or the relay itself failed the attempt.
ProcessMain = Callable[[Connection, TrainingTask], None]
Ending = Literal["reported", "lost", "timeout", "vanished"] | Failed


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
        cpu_threads: int,
        process_main: ProcessMain = training_process_main,
    ) -> None:
        """`lease_deadline`: time.monotonic() by which the claim's lease runs out (taken before the claim).
        `cpu_threads`: the threads each of its training processes uses (worker/cpu_share.py).
        `process_main` is what the training process runs (tests hand in a fake)."""
        self._engine = engine
        self._settings = settings
        self._lease = lease
        self._lease_deadline = lease_deadline
        self._stop = stop
        self._mp = mp
        self._process_main = process_main
        self._cpu_threads = cpu_threads
        self._job_dir = job_dir(settings.artifacts_dir, lease.job_id).resolve()
        self._own_dir = attempt_dir(self._job_dir, lease.attempt)
        self._clock = _Clock(
            earlier_s=lease.runtime_seconds, limit_s=lease.max_runtime_seconds, started=time.monotonic()
        )
        self._last_progress_write = 0.0
        self._process: TrainingProcess | None = None
        # Without a shared folder (TRAINQ_API_URL), files travel to and from the API.
        self._transfers: AttemptTransfers | None = None
        if settings.api_url:
            self._transfers = AttemptTransfers(
                ApiFiles.connect(settings.api_url, settings.api_key),
                lease=lease,
                job_dir=self._job_dir,
                renew=self._renew,
                lease_seconds=settings.lease_seconds,
            )

    def run(self) -> None:
        try:
            self._run()
        finally:
            if self._transfers is not None:
                self._transfers.finish(self._own_dir)

    def _run(self) -> None:
        self._remove_stale_files()
        lease = self._lease
        try:
            resume_from = self._resume_file()
            # A resumed attempt's checkpoint holds everything: init_from mattered to the first only.
            init_file = None if resume_from else self._init_file()
        except StaleAttempt:
            self._lost()
            return
        except ApiFailure as exc:
            self._fail(exc.reason, str(exc))
            return
        except SourceCheckpointGone as exc:
            self._fail(FailureReason.checkpoint_error, str(exc))
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
            cpu_threads=self._cpu_threads,
            init_file=str(init_file) if init_file else None,
        )
        self._clock.started = time.monotonic()
        process: TrainingProcess
        if lease.devices > 1:
            env = pinned_gpus(os.environ.get("CUDA_VISIBLE_DEVICES"), lease.devices, lease.device_kind)
            process = TorchrunProcess(task, devices=lease.devices, env=env)
        else:
            process = ForkedProcess(self._mp, self._process_main, task)
        logger.info(
            "job %s: training process %d started on %d %s device(s) (resume from %s)",
            lease.job_id,
            process.pid,
            lease.devices,
            lease.device_kind,
            task.resume_from,
        )
        ending: Ending | None = None
        self._process = process
        try:
            ending = self._relay(process)
        finally:
            process.end(reported=ending == "reported")
            # A checkpoint being written when the process was killed never got its final name.
            for partial in self._own_dir.glob(".*.tmp"):
                partial.unlink(missing_ok=True)
            self._remove_stale_files()
        match ending:
            case "lost":
                self._remove_folder_if_deleted()
            case "timeout":
                self._fail(
                    FailureReason.timeout,
                    f"the job used up max_runtime_seconds={self._lease.max_runtime_seconds:g}; "
                    "its checkpoints are kept",
                )
            case "vanished":
                self._fail(*process.death())
            case Failed(reason=reason, message=message):
                self._fail(reason, message)

    def _resume_file(self) -> Path | None:
        """Where the training process resumes from: in the shared folder, or fetched from the API."""
        lease = self._lease
        if lease.resume_file is None:
            return None
        if self._transfers is None:
            return self._job_dir / lease.resume_file
        # Fetched into this attempt's own folder: another worker of this host may resume the same file.
        return self._transfers.fetch_resume(into=self._own_dir)

    def _init_file(self) -> Path | None:
        return init_checkpoint(
            self._engine,
            hyperparameters=self._lease.hyperparameters,
            artifacts_dir=self._settings.artifacts_dir,
            transfers=self._transfers,
            into=self._own_dir,
        )

    def _relay(self, process: TrainingProcess) -> Ending:
        """Relay events to the queue until the job ends."""
        lease_s = self._settings.lease_seconds
        next_heartbeat = time.monotonic() + lease_s / 4
        next_hold_check = time.monotonic() + HOLD_CHECK_INTERVAL_S
        # Only a worker without the shared folder sends its log.
        next_log_upload = time.monotonic() + LOG_UPLOAD_INTERVAL_S if self._transfers else math.inf
        stop_sent = False
        while True:
            if self._stop.is_set() and not stop_sent:
                logger.info("job %s: asking the training process to stop and checkpoint", self._lease.job_id)
                stop_sent = True
                process.send(Stop())
            if process.poll(POLL_S):
                try:
                    message = process.recv()
                except EOFError:
                    return "vanished"
                try:
                    keep_going = self._handle(message)
                except ApiFailure as exc:
                    return Failed(reason=exc.reason, message=str(exc))
                if keep_going is None:
                    return "reported"
                if not keep_going:
                    return self._lost()
            now = time.monotonic()
            if self._clock.expired():
                return "timeout"
            if now >= next_heartbeat:
                next_heartbeat = now + lease_s / 4
                if not self._renew():
                    return self._lost()
            elif now >= next_log_upload:
                next_log_upload = now + LOG_UPLOAD_INTERVAL_S
                if self._transfers is not None:
                    self._transfers.upload_log()
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
        if self._process is not None:
            self._process.send(LeaseRenewed(deadline=self._lease_deadline))
        return True

    def _handle(self, report: Report) -> bool | None:
        """Apply one report: True to go on, False when the lease is lost, None when the job ended."""
        lease, engine = self._lease, self._engine
        match report:
            case Started(
                device=device,
                precision=precision,
                dataset=dataset,
                warm_start=warm_start,
                cpu_threads=threads,
            ):
                return queue.record_start(
                    engine,
                    lease=lease,
                    device=device,
                    precision=precision,
                    dataset=dataset,
                    warm_start=warm_start,
                    cpu_threads=threads,
                )
            case Progress(epoch=epoch, fraction=fraction):
                now = time.monotonic()
                if now - self._last_progress_write < PROGRESS_WRITE_INTERVAL_S:
                    return True
                self._last_progress_write = now
                return queue.record_progress(engine, lease=lease, epoch=epoch, progress=fraction)
            case EpochEnded(metrics=metrics, fraction=fraction, checkpoint=checkpoint):
                # Listed only once the API holds it whole: the row is written after the upload.
                if checkpoint is not None and not self._sent(checkpoint.file_name, checkpoint.sha256):
                    return False
                unneeded = queue.record_epoch(
                    engine, lease=lease, metrics=metrics, progress=fraction, checkpoint=checkpoint
                )
                return self._delete_unneeded(unneeded, checkpoint)
            case Finished(status="interrupted", resume_file=resume_file):
                self._final_log()
                resume_sha256 = None
                if resume_file is not None:
                    # Also from a shared folder: a worker on another host may resume the job.
                    resume_sha256 = file_sha256(self._job_dir / resume_file)
                    if not self._sent(resume_file, resume_sha256):
                        return False
                queue.release(
                    engine,
                    lease=lease,
                    resume_file=resume_file,
                    resume_sha256=resume_sha256,
                    runtime_seconds=self._clock.runtime_s(),
                )
                return None
            case Finished(results=RunResults() as results):
                # Listed only once the API holds them whole, as checkpoints are.
                if not all(self._sent(export.file_name, export.sha256) for export in results.exports):
                    return False
                self._final_log()
                queue.succeed(engine, lease=lease, runtime_seconds=self._clock.runtime_s(), results=results)
                return None
            case Failed(reason=reason, message=message):
                self._final_log()
                self._fail(reason, message)
                return None
        raise TypeError(f"unknown report from the training process: {report!r}")

    def _sent(self, file_name: str, sha256: str) -> bool:
        """Whether the API holds the file now (always, with a shared folder); False if the lease is lost."""
        return self._transfers is None or self._transfers.upload(file_name, sha256)

    def _final_log(self) -> None:
        # Before the job ends: once another attempt holds it, this one's log is refused.
        if self._transfers is not None:
            self._transfers.upload_log(force=True)

    def _delete_unneeded(self, unneeded: list[str] | None, checkpoint: CheckpointFile | None) -> bool:
        if unneeded is None:
            if checkpoint is not None:
                (self._job_dir / checkpoint.file_name).unlink(missing_ok=True)
            return False
        # Files are deleted only after they stopped being listed: nothing listed is ever missing.
        for name in unneeded:
            (self._job_dir / name).unlink(missing_ok=True)
        return True

    def _fail(self, reason: FailureReason, message: str) -> None:
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

    def _remove_folder_if_deleted(self) -> None:
        """A job deleted (after a cancel) while its training process still ran: what the process
        wrote after the API removed the shared folder would stay with no row to name it. The
        process is gone now, and job ids are never reused, so the whole folder can go. (A worker
        on another host removes its own attempt's files anyway, and the API refuses uploads for a
        job it no longer has.)"""
        job_id = self._lease.job_id
        if self._transfers is not None or not queue.is_deleted(self._engine, job_id=job_id):
            return
        try:
            if remove_job_folder(self._settings.artifacts_dir.resolve(), job_id):
                logger.info(
                    "job %s: deleted while it ran; removed what its training process wrote since", job_id
                )
        except OSError as exc:
            logger.warning("job %s: deleted while it ran; its folder could not be removed: %s", job_id, exc)

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
