"""One job's life: start its training process, relay its events to the queue, stop it."""

from __future__ import annotations

import logging
import signal
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any, Literal

from sqlalchemy import Engine

from app import queue
from app.queue import Lease
from app.settings import Settings

logger = logging.getLogger(__name__)

POLL_S = 0.2
PROGRESS_WRITE_INTERVAL_S = 1.0
CHILD_EXIT_GRACE_S = 30.0

Ending = Literal["reported", "lost", "vanished"]


def _training_process_main(*args: Any) -> None:
    # Imported here so the supervising process itself never loads torch.
    from worker.runner import run_job

    run_job(*args)


class JobSupervisor:
    """Runs one claimed job to its end; every write it makes is fenced by the lease."""

    def __init__(
        self, *, engine: Engine, settings: Settings, lease: Lease, stop: threading.Event, mp: BaseContext
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._lease = lease
        self._stop = stop
        self._mp = mp
        self._job_dir = settings.artifacts_dir / lease.job_id
        self._last_progress_write = 0.0

    def run(self) -> None:
        self._job_dir.mkdir(parents=True, exist_ok=True)
        resume = str(self._job_dir / self._lease.resume_file) if self._lease.resume_file else None
        conn, child_conn = self._mp.Pipe(duplex=True)
        process = self._mp.Process(  # type: ignore[attr-defined]
            target=_training_process_main,
            args=(
                child_conn,
                self._lease.job_id,
                self._lease.hyperparameters,
                str(self._settings.data_dir),
                str(self._job_dir),
                resume,
            ),
            name=f"trainq-job-{self._lease.job_id}",
        )
        process.start()
        child_conn.close()
        logger.info(
            "job %s: training process %d started (resume from %s)", self._lease.job_id, process.pid, resume
        )
        try:
            ending = self._relay(conn)
        finally:
            conn.close()
            # A process whose lease is gone must stop now; one that reported its end is exiting anyway.
            process.join(CHILD_EXIT_GRACE_S if ending == "reported" else 0)
            if process.is_alive():
                process.kill()
            process.join()
        if ending == "vanished":
            self._end_without_report(process.exitcode)

    def _relay(self, conn: Connection) -> Ending:
        """Relay events to the queue until the job ends."""
        heartbeat_interval_s = self._settings.lease_seconds / 4
        next_heartbeat = time.monotonic() + heartbeat_interval_s
        stop_sent = False
        while True:
            if self._stop.is_set() and not stop_sent:
                logger.info("job %s: asking the training process to stop", self._lease.job_id)
                conn.send("stop")
                stop_sent = True
            if conn.poll(POLL_S):
                try:
                    message = conn.recv()
                except EOFError:
                    return "vanished"
                keep_going = self._handle(message)
                if keep_going is None:
                    return "reported"
                if not keep_going:
                    return self._lost()
            if time.monotonic() >= next_heartbeat:
                next_heartbeat += heartbeat_interval_s
                if not queue.heartbeat(
                    self._engine, lease=self._lease, lease_seconds=self._settings.lease_seconds
                ):
                    return self._lost()

    def _handle(self, message: dict[str, Any]) -> bool | None:
        """Apply one event: True to go on, False when the lease is lost, None when the job ended."""
        lease, engine = self._lease, self._engine
        event = message["event"]
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
        if event == "epoch":
            return queue.record_epoch(
                engine, lease=lease, metrics=message["metrics"], progress=message["fraction"]
            )
        if event == "checkpoint":
            return self._record_checkpoint(message)
        if event == "done":
            if message["status"] == "interrupted":
                queue.release(engine, lease=lease)
            else:
                queue.succeed(engine, lease=lease)
            return None
        if event == "failed":
            queue.fail(engine, lease=lease, reason=message["reason"], message=message["message"])
            return None
        raise ValueError(f"unknown event from the training process: {event!r}")

    def _record_checkpoint(self, message: dict[str, Any]) -> bool:
        stale = queue.record_checkpoint(
            self._engine,
            lease=self._lease,
            epoch=message["epoch"],
            file_name=message["file_name"],
            size_bytes=message["size_bytes"],
            sha256=message["sha256"],
            is_best=message["is_best"],
        )
        if stale is None:
            return False
        # Files are deleted only after they stopped being listed: nothing listed is ever missing.
        for name in stale:
            (self._job_dir / name).unlink(missing_ok=True)
        return True

    def _lost(self) -> Ending:
        logger.warning(
            "job %s: lease lost (taken back or ended elsewhere); stopping its training", self._lease.job_id
        )
        return "lost"

    def _end_without_report(self, exitcode: int | None) -> None:
        if exitcode is not None and exitcode < 0:
            cause = f"was killed by {signal.Signals(-exitcode).name}"
            hint = " (SIGKILL is often the out-of-memory killer: lower batch_size or image_size)"
            message = f"the training process {cause}{hint if exitcode == -signal.SIGKILL else ''}"
        else:
            message = f"the training process exited with code {exitcode} without reporting a result"
        queue.fail(self._engine, lease=self._lease, reason="training_error", message=message)
